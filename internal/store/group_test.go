package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Concurrent writers share group commits, and each one's outcome is its own: a
// failing or panicking write is undone alone, the others are durable and visible.
func TestGroupCommitIsolatesWrites(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer st.Close()
	s := st.(*sqlStore)
	require.Implements(t, (*grouper)(nil), s.drv)

	put := func(w querier, target string) error {
		_, err := w.exec(ctx, sqlWorldStateInsert, "t1", "r", target, []byte(`{}`), s.drv.timeArg(now()))
		return err
	}
	errBoom := errors.New("boom")
	const writers = 64
	var wg sync.WaitGroup
	results := make([]error, writers)
	panics := make([]any, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			results[i] = st.InTx(ctx, func(tx Store) error {
				w := tx.(*sqlStore).w
				if err := put(w, fmt.Sprintf("svc-%d", i)); err != nil {
					return err
				}
				switch i % 4 {
				case 1: // fails after writing: its write is undone
					return errBoom
				case 2: // panics after writing: undone, and the panic reaches the caller
					panic("writer panicked")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i := range writers {
		switch i % 4 {
		case 1:
			require.ErrorIs(t, results[i], errBoom)
		case 2:
			require.Equal(t, "writer panicked", panics[i])
		default:
			require.NoError(t, results[i])
			require.Nil(t, panics[i])
		}
		_, err := st.WorldStates().Get(ctx, "t1", "r", fmt.Sprintf("svc-%d", i))
		if i%4 == 1 || i%4 == 2 {
			require.ErrorIs(t, err, ErrNotFound, "writer %d was undone", i)
		} else {
			require.NoError(t, err, "writer %d is stored", i)
		}
	}
}

// A write whose context ended before its turn is skipped and reports the context's
// error; a write after Close is refused.
func TestGroupCommitCancelledAndClosed(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	err = st.InTx(cancelled, func(Store) error { ran = true; return nil })
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, ran)

	require.NoError(t, st.Close())
	err = st.InTx(ctx, func(Store) error { ran = true; return nil })
	require.ErrorIs(t, err, errStoreClosed)
	require.False(t, ran)
}

// A write that leaves its goroutine (runtime.Goexit, as t.FailNow does) instead of
// returning fails with its group, nothing of the group is kept, and the store goes on
// taking writes.
func TestGroupCommitSurvivesGoexit(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer st.Close()
	s := st.(*sqlStore)
	put := func(w querier, target string) error {
		_, err := w.exec(ctx, sqlWorldStateInsert, "t1", "r", target, []byte(`{}`), s.drv.timeArg(now()))
		return err
	}
	err = st.InTx(ctx, func(tx Store) error {
		if err := put(tx.(*sqlStore).w, "gone"); err != nil {
			return err
		}
		runtime.Goexit()
		return nil
	})
	require.ErrorIs(t, err, errGroupAborted)
	_, err = st.WorldStates().Get(ctx, "t1", "r", "gone")
	require.ErrorIs(t, err, ErrNotFound, "the aborted group kept nothing")

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, st.InTx(wctx, func(tx Store) error { return put(tx.(*sqlStore).w, "after") }), "later writes go through")
	_, err = st.WorldStates().Get(ctx, "t1", "r", "after")
	require.NoError(t, err)
}

// Statements built for one batch size (many arguments) are not cached; fixed ones are.
func TestStatementCacheSkipsOneOffs(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer st.Close()
	seqs := make([]int64, 100)
	for i := range seqs {
		seqs[i] = int64(i + 1)
	}
	for n := 40; n <= 100; n++ {
		require.NoError(t, st.Outbox().Delete(ctx, seqs[:n]))
	}
	c := st.(*sqlStore).drv.(*sqliteDriver).committer
	c.stmts.mu.Lock()
	cached := len(c.stmts.stmts)
	c.stmts.mu.Unlock()
	require.Less(t, cached, 10, "61 batch sizes did not each leave a prepared statement")
}
