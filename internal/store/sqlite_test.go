package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/storetest"
)

func newSQLite(t testing.TB) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{DataDir: filepath.Join(t.TempDir(), "data")})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestSQLiteConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return newSQLite(t) })
}

func TestSQLiteOpen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "nested", "data")

	s, err := store.Open(ctx, store.Config{DataDir: dir})
	require.NoError(t, err)
	require.Equal(t, store.BackendSQLite, s.Backend())
	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "data dir is private")
	require.FileExists(t, filepath.Join(dir, store.SQLiteFileName))

	p, _, err := s.Proposals().Create(ctx, storetest.NewProposal("t"))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	// Reopening keeps the data and re-applies nothing.
	s, err = store.Open(ctx, store.Config{DataDir: dir})
	require.NoError(t, err)
	defer s.Close()
	got, err := s.Proposals().Get(ctx, "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, p, got)

	_, err = store.Open(ctx, store.Config{})
	require.ErrorIs(t, err, store.ErrInvalid, "DataDir is required without a DSN")
}

// Several processes (here: Stores) opening a fresh file at once all succeed.
func TestSQLiteConcurrentOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := store.Open(t.Context(), store.Config{DataDir: dir})
			if err == nil {
				_, _, err = s.Proposals().Create(t.Context(), storetest.NewProposal("t"))
				err = errors.Join(err, s.Close())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

func BenchmarkProposalCreate(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchCreate(b, newSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { benchCreate(b, newPostgres(b)) })
}

func benchCreate(b *testing.B, s store.Store) {
	ctx := context.Background()
	ps := make([]*store.Proposal, b.N)
	for i := range ps {
		ps[i] = storetest.NewProposal("bench")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := s.Proposals().Create(ctx, ps[i]); err != nil {
			b.Fatal(err)
		}
	}
}
