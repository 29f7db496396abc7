package store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationLockID is the session advisory lock key held while migrating, so
// processes that start at once migrate one after the other.
var migrationLockID = int64(crc32.ChecksumIEEE([]byte("decision-fabric/store/migrate")))

// defaultMaxConns is the pool size unless the DSN sets pool_max_conns.
const defaultMaxConns = 16

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres dsn: %w", ErrInvalid, err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		// pgx's default (max(4, CPUs)) starves a server whose requests each wait for a
		// durable COMMIT: Postgres commits concurrent transactions together, so more
		// connections in flight means more commits per flush. Connections open lazily.
		cfg.MaxConns = defaultMaxConns
	}
	if err := migratePostgres(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect postgres: %w", err)
	}
	d := &pgDriver{pool: pool}
	if err := d.ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect postgres: %w", err)
	}
	return newRootStore(d), nil
}

// migratePostgres runs goose over a short-lived database/sql handle.
func migratePostgres(ctx context.Context, cc *pgx.ConnConfig) error {
	db := stdlib.OpenDB(*cc.Copy())
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID),
		lock.WithLockTimeout(1, 300), // poll every second, for up to 5 minutes
	)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	p, err := newMigrator(goose.DialectPostgres, "postgres", db, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return migrate(ctx, p)
}

type pgDriver struct{ pool *pgxpool.Pool }

func (d *pgDriver) name() string                   { return BackendPostgres }
func (d *pgDriver) reader() querier                { return pgxQuerier{d.pool} }
func (d *pgDriver) writer() querier                { return pgxQuerier{d.pool} }
func (d *pgDriver) timeArg(t time.Time) any        { return t }
func (d *pgDriver) ping(ctx context.Context) error { return d.pool.Ping(ctx) }
func (d *pgDriver) close() error                   { d.pool.Close(); return nil }

func (d *pgDriver) begin(ctx context.Context) (txn, error) {
	tx, err := d.pool.Begin(ctx) // READ COMMITTED
	if err != nil {
		return nil, err
	}
	return pgxTx{pgxQuerier{tx}, tx}, nil
}

func (d *pgDriver) classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch pe.Code {
	case "23505", "40001": // unique_violation, serialization_failure
		return ErrConflict
	case "23503": // foreign_key_violation
		return ErrNotFound
	case "23514", "23502", "22P02", "22021": // check, not null, invalid text, bad character
		return ErrInvalid
	}
	return nil
}

// pgx adapters. pgx.Rows and pgx.Row already match rows and row.

type pgxRunner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type pgxQuerier struct{ db pgxRunner }

func (q pgxQuerier) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.db.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (q pgxQuerier) query(ctx context.Context, query string, args ...any) (rows, error) {
	return q.db.Query(ctx, query, args...)
}

func (q pgxQuerier) queryRow(ctx context.Context, query string, args ...any) row {
	return q.db.QueryRow(ctx, query, args...)
}

type pgxTx struct {
	pgxQuerier
	tx pgx.Tx
}

func (t pgxTx) commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t pgxTx) rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }
