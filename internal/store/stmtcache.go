package store

import (
	"context"
	"database/sql"
	"sync"
)

// SQLite prepares a statement from its text on every call unless it is prepared once
// and kept: with modernc.org/sqlite that preparation was a tenth of the fabric's CPU
// under load. stmtRunner keeps prepared statements by query text, for a pool (the
// statement is prepared per connection as database/sql needs it) or for the
// committer's single connection.

// Statements with more than maxCachedArgs arguments are built for one batch size (a
// multi-row insert, an IN list) and would fill the cache with one-offs: they run
// unprepared. maxCachedStmts bounds the cache in any case.
const (
	maxCachedArgs  = 32
	maxCachedStmts = 512
)

type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	sqlRunner
}

type stmtRunner struct {
	db preparer
	// noCancel runs statements without their context's cancellation: set for the
	// committer's connection (see committer.commit).
	noCancel bool

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func newStmtRunner(db preparer, noCancel bool) *stmtRunner {
	return &stmtRunner{db: db, noCancel: noCancel, stmts: map[string]*sql.Stmt{}}
}

func (r *stmtRunner) ctx(ctx context.Context) context.Context {
	if r.noCancel {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// stmt returns the prepared statement for q with nargs arguments, or nil when q is not
// cached (too many arguments, the cache is full, or preparing failed: running q
// unprepared then reports the error).
func (r *stmtRunner) stmt(ctx context.Context, q string, nargs int) *sql.Stmt {
	if nargs > maxCachedArgs {
		return nil
	}
	r.mu.Lock()
	st, ok := r.stmts[q]
	full := len(r.stmts) >= maxCachedStmts
	r.mu.Unlock()
	if ok || full {
		return st
	}
	st, err := r.db.PrepareContext(r.ctx(ctx), q)
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.stmts[q]; ok { // prepared concurrently: keep one
		_ = st.Close()
		return prev
	}
	r.stmts[q] = st
	return st
}

func (r *stmtRunner) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := r.stmt(ctx, q, len(args)); st != nil {
		return st.ExecContext(r.ctx(ctx), args...)
	}
	return r.db.ExecContext(r.ctx(ctx), q, args...)
}

func (r *stmtRunner) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := r.stmt(ctx, q, len(args)); st != nil {
		return st.QueryContext(r.ctx(ctx), args...)
	}
	return r.db.QueryContext(r.ctx(ctx), q, args...)
}

func (r *stmtRunner) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := r.stmt(ctx, q, len(args)); st != nil {
		return st.QueryRowContext(r.ctx(ctx), args...)
	}
	return r.db.QueryRowContext(r.ctx(ctx), q, args...)
}

// close closes every cached statement.
func (r *stmtRunner) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for q, st := range r.stmts {
		_ = st.Close()
		delete(r.stmts, q)
	}
}
