package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite layout: one writer pool with a single connection (writes queue in Go
// instead of failing with SQLITE_BUSY; transactions start with BEGIN
// IMMEDIATE) and a read-only pool for concurrent readers, which WAL mode
// never blocks. busy_timeout covers other processes sharing the file.
const sqliteCommonPragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)"

func sqliteDSN(file string, extra string) string {
	return "file:" + (&url.URL{Path: file}).EscapedPath() + "?" + sqliteCommonPragmas + "&" + extra
}

func openSQLite(ctx context.Context, dataDir string) (_ Store, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	file, err := filepath.Abs(filepath.Join(dataDir, SQLiteFileName))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	d := &sqliteDriver{}
	defer func() {
		if err != nil {
			_ = d.close()
		}
	}()
	if d.w, err = sql.Open("sqlite", sqliteDSN(file, "_pragma=journal_mode(WAL)&_txlock=immediate")); err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	d.w.SetMaxOpenConns(1)
	if err := migrateSQLite(ctx, d.w); err != nil {
		return nil, err
	}
	// Opened after migrating, so the file is already in WAL mode.
	if d.r, err = sql.Open("sqlite", sqliteDSN(file, "_pragma=query_only(1)")); err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	d.r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	if err := d.ping(ctx); err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	d.committer = newCommitter(d.w)
	return newRootStore(d), nil
}

// migrateSQLite applies migrations. SQLite has no advisory lock: when
// processes race on a fresh file, the loser's migration fails on the winner's
// tables. BEGIN IMMEDIATE serialises the attempts, so retrying with a fresh
// provider (which re-reads the version table) converges.
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	var err error
	for attempt := range 3 {
		var p *goose.Provider
		if p, err = newMigrator(goose.DialectSQLite3, "sqlite", db); err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		if err = migrate(ctx, p); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return err
}

type sqliteDriver struct {
	w *sql.DB // single connection: all writes and transactions, run by the committer
	r *sql.DB // read-only pool
	*committer
}

func (d *sqliteDriver) name() string            { return BackendSQLite }
func (d *sqliteDriver) reader() querier         { return sqlDBQuerier{d.r} }
func (d *sqliteDriver) writer() querier         { return sqlDBQuerier{d.w} }
func (d *sqliteDriver) timeArg(t time.Time) any { return t.UnixMicro() }

func (d *sqliteDriver) begin(ctx context.Context) (txn, error) {
	tx, err := d.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE via _txlock
	if err != nil {
		return nil, err
	}
	return sqlTx{sqlDBQuerier{tx}, tx}, nil
}

func (d *sqliteDriver) ping(ctx context.Context) error {
	if err := d.w.PingContext(ctx); err != nil {
		return err
	}
	return d.r.PingContext(ctx)
}

func (d *sqliteDriver) close() error {
	if d.committer != nil {
		d.committer.close()
	}
	var errs []error
	for _, db := range []*sql.DB{d.r, d.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

func (d *sqliteDriver) classify(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return ErrConflict
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return ErrNotFound
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_CONSTRAINT_DATATYPE:
		return ErrInvalid
	}
	return nil
}

// database/sql adapters (SQLite).

type sqlRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqlDBQuerier struct{ db sqlRunner }

func (q sqlDBQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q sqlDBQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	rs, err := q.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rs}, nil
}

func (q sqlDBQuerier) queryRow(ctx context.Context, query string, args ...any) row {
	return q.db.QueryRowContext(ctx, query, args...)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

type sqlTx struct {
	sqlDBQuerier
	tx *sql.Tx
}

func (t sqlTx) commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) rollback(context.Context) error { return t.tx.Rollback() }
