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
	conn   *sql.Conn       // the writer connection, owned for the committer's lifetime
	stmts  *stmtRunner     // prepared statements on conn, run without cancellation
	queue  chan *groupUnit // unbuffered: a write is either taken by the committer or refused
	quit   chan struct{}
	exited chan struct{}
	once   sync.Once
}

func newCommitter(ctx context.Context, db *sql.DB) (*committer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: writer connection: %w", err)
	}
	c := &committer{conn: conn, stmts: newStmtRunner(conn, true), queue: make(chan *groupUnit), quit: make(chan struct{}), exited: make(chan struct{})}
	go c.run()
	return c, nil
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
	c.stmts.close()
	_ = c.conn.Close()
}

// alive is nil while the committer takes writes.
func (c *committer) alive() error {
	select {
	case <-c.quit:
		return errStoreClosed
	default:
		return nil
	}
}

func (c *committer) run() {
	stopped := false
	defer func() {
		if stopped {
			close(c.exited)
			return
		}
		// A write ended this goroutine (runtime.Goexit, e.g. t.FailNow inside an InTx
		// callback): commit has already failed its group; carry on in a new goroutine
		// so later writes are not left waiting.
		go c.run()
	}()
	for {
		var first *groupUnit
		select {
		case first = <-c.queue:
		case <-c.quit:
			stopped = true
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
	finished := false
	defer func() {
		if !finished { // a write ended the goroutine mid-group: nothing of it is kept
			_, _ = c.conn.ExecContext(context.Background(), "ROLLBACK")
			for _, u := range batch {
				if u.err == nil && u.panic == nil {
					u.err = errGroupAborted
				}
			}
		}
		for _, u := range batch {
			close(u.done)
		}
	}()
	// The group's transaction outlives any one caller's context; each write's
	// statements also run without cancellation (stmtRunner.noCancel): SQLite answers a
	// cancelled statement with sqlite3_interrupt, which would roll back the whole group.
	bg := context.Background()
	if _, err := c.conn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		for _, u := range batch {
			u.err = fmt.Errorf("store: begin: %w", err)
		}
		finished = true
		return
	}
	t := groupTx{sqlDBQuerier{c.stmts}}
	for _, u := range batch {
		if err := u.ctx.Err(); err != nil {
			u.err = err
			continue
		}
		u.panic, u.err = runUnit(t, u)
	}
	if _, err := c.conn.ExecContext(bg, "COMMIT"); err != nil {
		_, _ = c.conn.ExecContext(bg, "ROLLBACK")
		for _, u := range batch {
			if u.err == nil && u.panic == nil {
				u.err = fmt.Errorf("store: commit: %w", err)
			}
		}
	}
	finished = true
}

// errGroupAborted fails the writes of a group that one of them ended by leaving its
// goroutine (runtime.Goexit) instead of returning.
var errGroupAborted = errors.New("store: a write in the same group ended its goroutine; nothing was committed")

// groupTx is the group's transaction as the writes see it: they run statements; the
// committer alone begins and ends it.
type groupTx struct{ sqlDBQuerier }

var errGroupManaged = errors.New("store: the group's transaction is committed by the committer")

func (groupTx) commit(context.Context) error   { return errGroupManaged }
func (groupTx) rollback(context.Context) error { return errGroupManaged }

// runUnit runs one write inside its own savepoint of the group's transaction; a
// failure, a panic or the end of the write's context undoes only that write.
func runUnit(t groupTx, u *groupUnit) (panicked any, err error) {
	if _, err := t.exec(u.ctx, "SAVEPOINT fabric_group"); err != nil {
		return nil, fmt.Errorf("store: savepoint: %w", err)
	}
	returned := false
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
		if !returned && panicked == nil {
			return // runtime.Goexit: commit rolls the whole group back
		}
		bg := context.Background()
		if err != nil || panicked != nil {
			_, _ = t.exec(bg, "ROLLBACK TO SAVEPOINT fabric_group")
		}
		if _, rerr := t.exec(bg, "RELEASE SAVEPOINT fabric_group"); rerr != nil && err == nil && panicked == nil {
			err = fmt.Errorf("store: release savepoint: %w", rerr)
		}
	}()
	err = u.fn(t)
	returned = true
	if err == nil {
		// The caller's context ended while its write ran (its client went away): the
		// write is undone rather than committed for a caller that will never hear of
		// it. Its statements ran without cancellation, so only this check sees it.
		err = u.ctx.Err()
	}
	return nil, err
}
