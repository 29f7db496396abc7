package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// MaxEventPayload bounds LifecycleEvent.Payload, in bytes.
const MaxEventPayload = 4096

// LifecycleEvent is a committed state transition waiting in the event outbox for
// publication to Kafka (the coordinator's event relay).
type LifecycleEvent struct {
	Seq        int64  // assigned by the store: publication order
	EventID    string // required, unique: the consumers' deduplication key
	TenantID   string // required
	ProposalID string // required: the record key; a proposal's events go out in Seq order
	// Payload is the serialized decisionfabric.events.v1.LifecycleEvent (stored byte for
	// byte), at most MaxEventPayload bytes.
	Payload []byte
	// The delivery state (input ignored by Add): Attempts counts claims, NextAttemptAt
	// is the earliest next claim, LeaseOwner/LeaseUntil the relay holding the row,
	// LastError the last failure (never a secret).
	Attempts      int
	NextAttemptAt time.Time
	LeaseOwner    string
	LeaseUntil    time.Time
	LastError     string
	CreatedAt     time.Time
}

// EventOutboxStore is the lifecycle event outbox: events written in the transaction of
// the transition they record (Add through the Store of InTx), claimed with leases by
// relays and deleted once published. It is not tenant-scoped.
type EventOutboxStore interface {
	// Add stores e (its CreatedAt, or the store clock) and returns its Seq. An event
	// whose EventID is already stored is ErrConflict.
	Add(ctx context.Context, e *LifecycleEvent) (int64, error)
	// Claim leases to owner until leaseUntil at most limit events, in Seq order, each
	// the oldest event of its proposal still in the outbox, whose NextAttemptAt is at
	// or before now and that no one holds a live lease on at now; it counts the attempt.
	// A proposal's next event is therefore never claimed before the previous one is
	// deleted (published), and concurrent claimers never get the same row (Postgres:
	// FOR UPDATE SKIP LOCKED; SQLite has one writer).
	Claim(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]*LifecycleEvent, error)
	// Published deletes the events owner holds among seqs; it returns how many. An
	// event another relay claimed since (a lost lease) is left to that relay.
	Published(ctx context.Context, owner string, seqs []int64) (int, error)
	// Failed records a failed publication of the events owner holds among seqs: the
	// lease ends, LastError becomes errText (cut to MaxNotificationError characters)
	// and they are due again at nextAttempt.
	Failed(ctx context.Context, owner string, seqs []int64, errText string, nextAttempt time.Time) error
	// Backlog returns how many events wait and the Seq-oldest one's CreatedAt (zero
	// when none).
	Backlog(ctx context.Context) (n int64, oldest time.Time, err error)
}

// EventOutbox implements Store.
func (s *sqlStore) EventOutbox() EventOutboxStore { return eventOutboxStore{s} }

const (
	eventCols      = `seq, event_id, tenant_id, proposal_id, payload, attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at`
	sqlEventInsert = `INSERT INTO event_outbox (event_id, tenant_id, proposal_id, payload, next_attempt_at, created_at)
	VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (event_id) DO NOTHING RETURNING seq`
	sqlEventBacklog = `SELECT count(*), min(seq) FROM event_outbox`
	sqlEventCreated = `SELECT created_at FROM event_outbox WHERE seq = $1`
)

type eventOutboxStore struct{ s *sqlStore }

func scanEvent(r row) (*LifecycleEvent, error) {
	var e LifecycleEvent
	var attempts int64
	if err := r.Scan(&e.Seq, &e.EventID, &e.TenantID, &e.ProposalID, &e.Payload, &attempts, timeCol{&e.NextAttemptAt},
		&e.LeaseOwner, nullTimeCol{&e.LeaseUntil}, &e.LastError, timeCol{&e.CreatedAt}); err != nil {
		return nil, err
	}
	e.Attempts = int(attempts)
	return &e, nil
}

func (es eventOutboxStore) Add(ctx context.Context, e *LifecycleEvent) (int64, error) {
	if e == nil {
		return 0, invalidf("nil lifecycle event")
	}
	if err := checkAll(
		checkText("EventID", e.EventID, true),
		checkText("TenantID", e.TenantID, true),
		checkText("ProposalID", e.ProposalID, true),
	); err != nil {
		return 0, err
	}
	if len(e.Payload) == 0 || len(e.Payload) > MaxEventPayload {
		return 0, invalidf("Payload has %d bytes, not 1 to %d", len(e.Payload), MaxEventPayload)
	}
	at := e.CreatedAt
	if at.IsZero() {
		at = now()
	}
	var seq int64
	err := es.s.write(ctx, func(w querier) error {
		err := w.queryRow(ctx, sqlEventInsert, e.EventID, e.TenantID, e.ProposalID, e.Payload, es.s.drv.timeArg(normTime(at))).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: event %s is already in the outbox", ErrConflict, e.EventID)
		}
		return err
	})
	return seq, es.s.wrap("add lifecycle event", err)
}

func (es eventOutboxStore) Claim(ctx context.Context, owner string, at, leaseUntil time.Time, limit int) ([]*LifecycleEvent, error) {
	if err := checkText("owner", owner, true); err != nil {
		return nil, err
	}
	if leaseUntil.IsZero() || !leaseUntil.After(at) {
		return nil, invalidf("leaseUntil must be after now")
	}
	if limit <= 0 {
		return []*LifecycleEvent{}, nil
	}
	lock := ""
	if es.s.drv.name() == BackendPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	// Only a proposal's oldest event is claimable: its next one waits until it is
	// published (deleted), which keeps each proposal's events in order on the topic.
	q := `UPDATE event_outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
	WHERE seq IN (SELECT o.seq FROM event_outbox o
		WHERE o.next_attempt_at <= $3 AND (o.lease_until IS NULL OR o.lease_until < $3)
		  AND NOT EXISTS (SELECT 1 FROM event_outbox e
			WHERE e.tenant_id = o.tenant_id AND e.proposal_id = o.proposal_id AND e.seq < o.seq)
		ORDER BY o.seq LIMIT $4` + lock + `)
	RETURNING ` + eventCols
	var out []*LifecycleEvent
	err := es.s.write(ctx, func(w querier) error {
		rs, err := w.query(ctx, q, owner, es.s.drv.timeArg(normTime(leaseUntil)), es.s.drv.timeArg(normTime(at)), min(limit, MaxListLimit))
		if err != nil {
			return err
		}
		out, err = collect(rs, scanEvent)
		return err
	})
	if err != nil {
		return nil, es.s.wrap("claim lifecycle events", err)
	}
	slices.SortFunc(out, func(a, b *LifecycleEvent) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// held runs q (owner $1, then extra arguments, then the seqs) over seqs in chunks and
// returns how many rows it changed.
func (es eventOutboxStore) held(ctx context.Context, op, q, owner string, seqs []int64, extra ...any) (int, error) {
	if err := checkText("owner", owner, true); err != nil {
		return 0, err
	}
	total := 0
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), MaxListLimit)]
		seqs = seqs[len(chunk):]
		args := append([]any{owner}, extra...)
		first := len(args) + 1
		for _, s := range chunk {
			args = append(args, s)
		}
		stmt := q + ` WHERE lease_owner = $1 AND seq IN (` + inList(first, len(chunk)) + `)`
		err := es.s.write(ctx, func(w querier) error {
			n, err := w.exec(ctx, stmt, args...)
			total += int(n)
			return err
		})
		if err != nil {
			return total, es.s.wrap(op, err)
		}
	}
	return total, nil
}

func (es eventOutboxStore) Published(ctx context.Context, owner string, seqs []int64) (int, error) {
	return es.held(ctx, "delete published lifecycle events", `DELETE FROM event_outbox`, owner, seqs)
}

func (es eventOutboxStore) Failed(ctx context.Context, owner string, seqs []int64, errText string, nextAttempt time.Time) error {
	if nextAttempt.IsZero() {
		return invalidf("nextAttempt is required")
	}
	_, err := es.held(ctx, "record failed lifecycle events",
		`UPDATE event_outbox SET lease_until = NULL, last_error = $2, next_attempt_at = $3`, owner, seqs,
		boundedError(errText), es.s.drv.timeArg(normTime(nextAttempt)))
	return err
}

func (es eventOutboxStore) Backlog(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var first *int64
	if err := es.s.r.queryRow(ctx, sqlEventBacklog).Scan(&n, &first); err != nil {
		return 0, time.Time{}, es.s.wrap("lifecycle event backlog", err)
	}
	if n == 0 || first == nil {
		return 0, time.Time{}, nil
	}
	var oldest time.Time
	if err := es.s.r.queryRow(ctx, sqlEventCreated, *first).Scan(timeCol{&oldest}); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, es.s.wrap("lifecycle event backlog", err)
	}
	return n, oldest, nil
}
