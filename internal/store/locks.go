package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Locks are a process's leader locks: named keys of which, among the processes
// sharing one store, at most one holds each at a time. Work that must be done by one
// process alone and in order — the coordinator's audit relay, one per tenant — is done
// by the holder; the others leave it.
//
// On Postgres they are session advisory locks (pg_try_advisory_lock on a 64-bit key
// hashed from the name) held on one dedicated connection, outside the pool: when the
// process dies its connection closes and the server releases them at once; when the
// connection breaks, Check reports them lost and the next TryLock connects again. On
// SQLite the store is one process's, which holds every lock.
type Locks interface {
	// TryLock takes name unless another process holds it; it reports whether this
	// process holds it now (also when it already did). It never waits for a holder.
	TryLock(ctx context.Context, name string) (bool, error)
	// Holds reports whether name is held, as of the last TryLock or Check.
	Holds(name string) bool
	// Check verifies that the locks are still held (their connection is alive); when
	// they are not, it forgets them all and returns the error.
	Check(ctx context.Context) error
	// Close releases every lock.
	Close() error
}

// NewLocks returns a set of leader locks on st's database (see Locks). It needs the
// root store (not one bound to a transaction).
func NewLocks(st Store) (Locks, error) {
	s, ok := st.(*sqlStore)
	if !ok || s.tx != nil {
		return nil, fmt.Errorf("%w: leader locks need the root store", ErrInvalid)
	}
	if d, ok := s.drv.(*pgDriver); ok {
		return &pgLocks{cfg: d.pool.Config().ConnConfig.Copy(), held: map[string]bool{}}, nil
	}
	return &localLocks{}, nil
}

// localLocks: the store has one process (SQLite), which holds every lock.
type localLocks struct{}

func (localLocks) TryLock(context.Context, string) (bool, error) { return true, nil }
func (localLocks) Holds(string) bool                             { return true }
func (localLocks) Check(context.Context) error                   { return nil }
func (localLocks) Close() error                                  { return nil }

// pgLocks are session advisory locks on one dedicated connection.
type pgLocks struct {
	cfg  *pgx.ConnConfig
	mu   sync.Mutex
	conn *pgx.Conn // nil until the first TryLock, and after a loss
	held map[string]bool
}

// sqlTryLeaderLock takes the session advisory lock of a name. The key space is the
// name's prefix "decision-fabric/leader/", apart from the audit log's transaction
// locks ("decision-fabric/audit/") and the migration lock.
const (
	sqlTryLeaderLock = `SELECT pg_try_advisory_lock(hashtextextended('decision-fabric/leader/' || $1, 0))`
)

func (l *pgLocks) TryLock(ctx context.Context, name string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[name] && l.conn != nil {
		return true, nil
	}
	if l.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, l.cfg)
		if err != nil {
			return false, fmt.Errorf("store: leader locks: connect: %w", err)
		}
		l.conn = conn
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, sqlTryLeaderLock, name).Scan(&ok); err != nil {
		l.lostLocked()
		return false, fmt.Errorf("store: leader lock %q: %w", name, err)
	}
	if ok {
		l.held[name] = true
	}
	return ok, nil
}

func (l *pgLocks) Holds(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil && l.held[name]
}

func (l *pgLocks) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || len(l.held) == 0 {
		return nil
	}
	if err := l.conn.Ping(ctx); err != nil {
		l.lostLocked()
		return fmt.Errorf("store: leader locks lost: %w", err)
	}
	return nil
}

// lostLocked drops the connection and, with it, every lock. l.mu held.
func (l *pgLocks) lostLocked() {
	if l.conn != nil {
		_ = l.conn.Close(context.Background())
	}
	l.conn = nil
	clear(l.held)
}

func (l *pgLocks) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	// Release them now: the server frees a closed session's locks only once its
	// backend has exited, a moment after the close.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, unlockErr := l.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	err := errors.Join(unlockErr, l.conn.Close(ctx))
	l.conn = nil
	clear(l.held)
	return err
}
