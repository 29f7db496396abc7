package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
)

// Two processes' leader locks on one Postgres database: a name is held by one of them
// at a time; released when its holder closes them, and when its holder's connection
// dies (a crashed process), after which the holder's Check reports the loss.
func TestPostgresLeaderLocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDSN(t)
	open := func() (store.Store, store.Locks) {
		s, err := store.Open(ctx, store.Config{PostgresDSN: dsn})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		l, err := store.NewLocks(s)
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		return s, l
	}
	_, a := open()
	_, b := open()

	ok, err := a.TryLock(ctx, "audit-relay/t1")
	require.NoError(t, err)
	require.True(t, ok, "a takes t1")
	ok, err = a.TryLock(ctx, "audit-relay/t1")
	require.NoError(t, err)
	require.True(t, ok, "a still holds t1")
	ok, err = b.TryLock(ctx, "audit-relay/t1")
	require.NoError(t, err)
	require.False(t, ok, "b must not take t1 while a holds it")
	require.False(t, b.Holds("audit-relay/t1"))
	ok, err = b.TryLock(ctx, "audit-relay/t2")
	require.NoError(t, err)
	require.True(t, ok, "b takes t2, which nobody holds")

	// a closes: t1 is free for b.
	require.NoError(t, a.Close())
	require.False(t, a.Holds("audit-relay/t1"))
	ok, err = b.TryLock(ctx, "audit-relay/t1")
	require.NoError(t, err)
	require.True(t, ok, "b takes t1 after a released it")

	// b's connection dies (as with a crash): the server frees its locks, and b's Check
	// says they are lost.
	admin, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer admin.Close(ctx)
	var killed int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed))
	require.Positive(t, killed, "no backend held an advisory lock")
	_, c := open()
	ok, err = c.TryLock(ctx, "audit-relay/t1")
	require.NoError(t, err)
	require.True(t, ok, "c takes t1 once b's session is gone")
	require.Error(t, b.Check(ctx), "b's locks are lost with its connection")
	require.False(t, b.Holds("audit-relay/t1"))
	ok, err = b.TryLock(ctx, "audit-relay/t1")
	require.NoError(t, err, "b connects again")
	require.False(t, ok, "b must not take t1 back while c holds it")
}

// On SQLite the store is one process's: it holds every lock.
func TestSQLiteLeaderLocks(t *testing.T) {
	t.Parallel()
	s, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer s.Close()
	l, err := store.NewLocks(s)
	require.NoError(t, err)
	ok, err := l.TryLock(context.Background(), "audit-relay/t1")
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, l.Holds("audit-relay/t1"))
	require.NoError(t, l.Close())
}
