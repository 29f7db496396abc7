package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Group commit (SQLite).
//
// SQLite has one writer at a time, and with synchronous=FULL every COMMIT waits for
// the disk. Committing each write on its own makes the disk's flush latency the
// ceiling on writes per second, however many callers are waiting. The committer
// instead owns the writer connection: it takes every write that is waiting, runs each
// inside its own SAVEPOINT of one transaction, commits once, and only then answers
// each caller. A write that fails is rolled back to its savepoint and fails alone; a
// COMMIT that fails fails every write of the group. Nothing is acknowledged before it
// is durable, and a lone writer pays no extra delay: a group is whatever queued while
// the previous COMMIT was flushing.

// maxGroup bounds the writes in one transaction, so one group's COMMIT is not held
// back indefinitely by a steady stream of newcomers.
const maxGroup = 256

// errStoreClosed is returned by writes submitted after Close.
var errStoreClosed = errors.New("store: closed")

type groupUnit struct {
	ctx   context.Context
	fn    func(t txn) error
	err   error
	panic any
	done  chan struct{}
}

type committer struct {
	db     *sql.DB
	queue  chan *groupUnit // unbuffered: a write is either taken by the committer or refused
	quit   chan struct{}
	exited chan struct{}
	once   sync.Once
}

func newCommitter(db *sql.DB) *committer {
	c := &committer{db: db, queue: make(chan *groupUnit), quit: make(chan struct{}), exited: make(chan struct{})}
	go c.run()
	return c
}

// group implements grouper.
func (c *committer) group(ctx context.Context, fn func(t txn) error) error {
	u := &groupUnit{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case c.queue <- u:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.quit:
		return errStoreClosed
	}
	// Once taken, the write runs to its end (the committer skips it if ctx ended
	// before its turn), so its outcome is always known to the caller.
	<-u.done
	if u.panic != nil {
		panic(u.panic)
	}
	return u.err
}

// close stops the committer after the group in flight.
func (c *committer) close() {
	c.once.Do(func() { close(c.quit) })
	<-c.exited
}

func (c *committer) run() {
	defer close(c.exited)
	for {
		var first *groupUnit
		select {
		case first = <-c.queue:
		case <-c.quit:
			return
		}
		batch := []*groupUnit{first}
	fill:
		for len(batch) < maxGroup {
			select {
			case u := <-c.queue:
				batch = append(batch, u)
			default:
				break fill
			}
		}
		c.commit(batch)
	}
}

func (c *committer) commit(batch []*groupUnit) {
	defer func() {
		for _, u := range batch {
			close(u.done)
		}
	}()
	// The group's transaction outlives any one caller's context; each write's
	// statements also run without cancellation (see noCancel).
	tx, err := c.db.BeginTx(context.Background(), nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		for _, u := range batch {
			u.err = fmt.Errorf("store: begin: %w", err)
		}
		return
	}
	t := sqlTx{sqlDBQuerier{noCancel{tx}}, tx}
	for _, u := range batch {
		if err := u.ctx.Err(); err != nil {
			u.err = err
			continue
		}
		u.err, u.panic = runUnit(t, u)
	}
	if err := tx.Commit(); err != nil {
		for _, u := range batch {
			if u.err == nil && u.panic == nil {
				u.err = fmt.Errorf("store: commit: %w", err)
			}
		}
	}
}

// runUnit runs one write inside its own savepoint of the group's transaction; a
// failure or panic undoes only that write.
func runUnit(t sqlTx, u *groupUnit) (err error, panicked any) {
	if _, err := t.exec(u.ctx, "SAVEPOINT fabric_group"); err != nil {
		return fmt.Errorf("store: savepoint: %w", err), nil
	}
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
		bg := context.Background()
		if err != nil || panicked != nil {
			_, _ = t.exec(bg, "ROLLBACK TO SAVEPOINT fabric_group")
		}
		if _, rerr := t.exec(bg, "RELEASE SAVEPOINT fabric_group"); rerr != nil && err == nil && panicked == nil {
			err = fmt.Errorf("store: release savepoint: %w", rerr)
		}
	}()
	return u.fn(t), nil
}

// noCancel runs statements without their context's cancellation. SQLite answers a
// cancelled statement with sqlite3_interrupt, which rolls back the whole
// transaction: in a group commit that would undo other callers' writes. The
// statements of one write are short; a caller whose context ends while its write is
// queued is skipped instead.
type noCancel struct{ tx *sql.Tx }

func (n noCancel) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return n.tx.ExecContext(context.WithoutCancel(ctx), q, args...)
}

func (n noCancel) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return n.tx.QueryContext(context.WithoutCancel(ctx), q, args...)
}

func (n noCancel) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return n.tx.QueryRowContext(context.WithoutCancel(ctx), q, args...)
}
