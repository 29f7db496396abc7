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
	readers := max(4, runtime.GOMAXPROCS(0))
	d.r.SetMaxOpenConns(readers)
	d.r.SetMaxIdleConns(readers) // a new connection parses the schema and re-prepares statements: keep them
	if err := d.r.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	d.rs = newStmtRunner(d.r, false)
	if d.committer, err = newCommitter(ctx, d.w); err != nil {
		return nil, err
	}
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
	w  *sql.DB // single connection: all writes and transactions, owned by the committer
	r  *sql.DB // read-only pool
	rs *stmtRunner
	*committer
}

func (d *sqliteDriver) name() string            { return BackendSQLite }
func (d *sqliteDriver) reader() querier         { return sqlDBQuerier{d.rs} }
func (d *sqliteDriver) writer() querier         { return errQuerier{} }
func (d *sqliteDriver) timeArg(t time.Time) any { return t.UnixMicro() }

// begin is not used on SQLite: transactions run in the committer's groups (grouper).
func (d *sqliteDriver) begin(context.Context) (txn, error) {
	return nil, errGroupManaged
}

// errQuerier is the SQLite root store's writer: every write goes through the
// committer (sqlStore.write), so a statement sent here is a bug.
type errQuerier struct{}

var errNoDirectWrites = errors.New("store: sqlite writes must go through the committer")

func (errQuerier) exec(context.Context, string, ...any) (int64, error) { return 0, errNoDirectWrites }
func (errQuerier) query(context.Context, string, ...any) (rows, error) { return nil, errNoDirectWrites }
func (errQuerier) queryRow(context.Context, string, ...any) row        { return errRow{} }

type errRow struct{}

func (errRow) Scan(...any) error { return errNoDirectWrites }

func (d *sqliteDriver) ping(ctx context.Context) error {
	if err := d.alive(); err != nil {
		return err
	}
	return d.r.PingContext(ctx)
}

func (d *sqliteDriver) close() error {
	if d.committer != nil {
		d.committer.close()
	}
	if d.rs != nil {
		d.rs.close()
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
