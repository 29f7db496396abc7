package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The two backends are adapted to the small query surface below, so the
// store logic (SQL text, validation, row scanning, transactions) is written
// once in this package. SQL uses $N placeholders, which both pgx and
// modernc.org/sqlite bind by ordinal.

// querier runs statements; both pools and transactions implement it.
type querier interface {
	exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	query(ctx context.Context, query string, args ...any) (rows, error)
	queryRow(ctx context.Context, query string, args ...any) row
}

// row is satisfied by *sql.Row and pgx.Row. A missing row is an error for
// which errors.Is(err, sql.ErrNoRows) holds on both backends.
type row interface{ Scan(dest ...any) error }

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

type txn interface {
	querier
	commit(ctx context.Context) error
	rollback(ctx context.Context) error
}

// driver is what a backend supplies.
type driver interface {
	name() string
	reader() querier // pure reads outside a transaction
	writer() querier // writes (and read-after-write) outside a transaction
	begin(ctx context.Context) (txn, error)
	ping(ctx context.Context) error
	close() error
	// timeArg encodes a UTC, microsecond-truncated time as a statement argument.
	timeArg(t time.Time) any
	// classify maps a driver error to ErrConflict/ErrNotFound/ErrInvalid, or nil.
	classify(err error) error
}

// sqlStore implements Store on top of a driver. The root store uses the
// driver's pools; a tx-bound store routes everything through one txn.
type sqlStore struct {
	drv driver
	r   querier
	w   querier
	tx  txn        // nil for the root store
	sp  *int       // savepoint counter shared by a tx and its nested InTx calls
	obs *observers // commit observers (root store only; see Observe)
}

func newRootStore(d driver) *sqlStore {
	return &sqlStore{drv: d, r: d.reader(), w: d.writer(), obs: &observers{}}
}

func (s *sqlStore) Backend() string { return s.drv.name() }

func (s *sqlStore) Ping(ctx context.Context) error {
	if s.tx != nil {
		var one int
		return s.wrap("ping", s.tx.queryRow(ctx, "SELECT 1").Scan(&one))
	}
	return s.wrap("ping", s.drv.ping(ctx))
}

func (s *sqlStore) Close() error {
	if s.tx != nil {
		return nil
	}
	return s.drv.close()
}

func (s *sqlStore) Proposals() ProposalStore       { return proposalStore{s} }
func (s *sqlStore) Snapshots() SnapshotStore       { return snapshotStore{s} }
func (s *sqlStore) WorldStates() WorldStateStore   { return worldStateStore{s} }
func (s *sqlStore) Negotiations() NegotiationStore { return negotiationStore{s} }

func (s *sqlStore) AuditLog() AuditLogStore { return auditLogStore{s} }
func (s *sqlStore) Outbox() OutboxStore     { return outboxStore{s} }

// grouper is a driver that commits concurrent writers together (SQLite's group commit,
// see sqlite.go): group runs fn inside a transaction shared with other callers, undoing
// only fn's work when it fails, and returns once that transaction is durable.
type grouper interface {
	group(ctx context.Context, fn func(t txn) error) error
}

// write runs one write operation: fn's statements go through w. On a grouping driver
// the root store queues fn for the next group commit; otherwise (Postgres, or inside
// a transaction) fn runs at once on s.w.
func (s *sqlStore) write(ctx context.Context, fn func(w querier) error) error {
	var err error
	if g, ok := s.drv.(grouper); ok && s.tx == nil {
		err = g.group(ctx, func(t txn) error { return fn(t) })
	} else {
		err = fn(s.w)
	}
	if err == nil && s.tx == nil {
		s.obs.notify(ctx)
	}
	return err
}

func (s *sqlStore) InTx(ctx context.Context, fn func(tx Store) error) (err error) {
	if s.tx != nil {
		return s.savepoint(ctx, fn)
	}
	if g, ok := s.drv.(grouper); ok {
		err := g.group(ctx, func(t txn) error {
			return fn(&sqlStore{drv: s.drv, r: t, w: t, tx: t, sp: new(int)})
		})
		if err == nil {
			s.obs.notify(ctx)
		}
		return err
	}
	t, err := s.drv.begin(ctx)
	if err != nil {
		return s.wrap("begin", err)
	}
	done := false
	defer func() {
		if !done { // fn failed or panicked: undo everything (panic continues after this)
			_ = t.rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(&sqlStore{drv: s.drv, r: t, w: t, tx: t, sp: new(int)}); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // the caller went away: roll back rather than commit for nobody
	}
	done = true
	if err := t.commit(ctx); err != nil {
		return s.wrap("commit", err)
	}
	s.obs.notify(ctx)
	return nil
}

func (s *sqlStore) savepoint(ctx context.Context, fn func(tx Store) error) error {
	*s.sp++
	name := fmt.Sprintf("fabric_sp_%d", *s.sp)
	if _, err := s.tx.exec(ctx, "SAVEPOINT "+name); err != nil {
		return s.wrap("savepoint", err)
	}
	done := false
	defer func() {
		if !done {
			bg := context.WithoutCancel(ctx)
			_, _ = s.tx.exec(bg, "ROLLBACK TO SAVEPOINT "+name)
			_, _ = s.tx.exec(bg, "RELEASE SAVEPOINT "+name)
		}
	}()
	if err := fn(s); err != nil {
		return err
	}
	done = true
	_, err := s.tx.exec(ctx, "RELEASE SAVEPOINT "+name)
	return s.wrap("release savepoint", err)
}

// wrap prefixes err with the operation and, when the driver recognises it,
// the matching sentinel. nil stays nil.
func (s *sqlStore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if sentinel := s.drv.classify(err); sentinel != nil {
		return fmt.Errorf("store: %s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// now is the store clock: UTC, truncated to microseconds.
func now() time.Time { return normTime(time.Now()) }

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// timeCol scans a timestamp from either backend: TIMESTAMPTZ (Postgres) or
// INTEGER unix microseconds (SQLite).
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*c.t = normTime(v)
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("store: cannot scan %T into a timestamp", src)
	}
	return nil
}

// listLimit applies the List methods' limit rule: <= 0 is DefaultListLimit, and it is
// capped at MaxListLimit.
func listLimit(limit int) int {
	if limit <= 0 {
		return DefaultListLimit
	}
	return min(limit, MaxListLimit)
}

// collect drains rs, scanning each row with scan.
func collect[T any](rs rows, scan func(row) (*T, error)) ([]*T, error) {
	defer rs.Close()
	out := []*T{}
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rs.Err()
}
