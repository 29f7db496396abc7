package store

import (
	"context"
	"time"
)

// OutboxEntry is an audit event waiting for delivery to the decision auditor.
type OutboxEntry struct {
	Seq            int64  // delivery order, assigned by the store
	TenantID       string // required
	ProposalID     string // required
	Kind           string // OutboxEntryKind or OutboxSnapshotKind
	Event          string // e.g. "proposal.enacted"; for a snapshot, its kind ("pre" or "post")
	Payload        []byte // JSON object; for a snapshot, {"sha256": "..."}
	IdempotencyKey string // required: the auditor records one entry per key
	Actor          string // the principal whose request caused the event
	TraceID        string // that request's trace id
	CreatedAt      time.Time
}

// Outbox entry kinds.
const (
	OutboxEntryKind    = "entry"    // AppendEntry
	OutboxSnapshotKind = "snapshot" // RecordSnapshot
)

// OutboxStore is the audit outbox: events written in the transaction of the change
// they record, delivered and deleted afterwards. It is not tenant-scoped: the relay
// delivers every tenant's events.
type OutboxStore interface {
	// Add stores e and returns it with Seq and CreatedAt set.
	Add(ctx context.Context, e *OutboxEntry) (*OutboxEntry, error)
	// List returns up to limit entries with Seq > afterSeq in Seq order (limit<=0 ->
	// 100, capped at MaxListLimit) created at or before notAfter (zero: no bound).
	List(ctx context.Context, afterSeq int64, notAfter time.Time, limit int) ([]*OutboxEntry, error)
	// Delete removes the entries with the given seqs; unknown seqs are ignored.
	Delete(ctx context.Context, seqs []int64) error
}

const (
	outboxCols      = `seq, tenant_id, proposal_id, kind, event, payload, idempotency_key, actor, trace_id, created_at`
	sqlOutboxInsert = `INSERT INTO audit_outbox (tenant_id, proposal_id, kind, event, payload, idempotency_key, actor, trace_id, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ` + outboxCols
	sqlOutboxList    = `SELECT ` + outboxCols + ` FROM audit_outbox WHERE seq > $1 ORDER BY seq LIMIT $2`
	sqlOutboxListOld = `SELECT ` + outboxCols + ` FROM audit_outbox WHERE seq > $1 AND created_at <= $3 ORDER BY seq LIMIT $2`
)

type outboxStore struct{ s *sqlStore }

func scanOutbox(r row) (*OutboxEntry, error) {
	var e OutboxEntry
	if err := r.Scan(&e.Seq, &e.TenantID, &e.ProposalID, &e.Kind, &e.Event, &e.Payload, &e.IdempotencyKey, &e.Actor, &e.TraceID, timeCol{&e.CreatedAt}); err != nil {
		return nil, err
	}
	return &e, nil
}

func (ob outboxStore) Add(ctx context.Context, e *OutboxEntry) (*OutboxEntry, error) {
	if e == nil {
		return nil, invalidf("nil outbox entry")
	}
	if err := checkAll(
		checkText("TenantID", e.TenantID, true),
		checkText("ProposalID", e.ProposalID, true),
		checkText("Event", e.Event, true),
		checkText("IdempotencyKey", e.IdempotencyKey, true),
		checkText("Actor", e.Actor, false),
		checkText("TraceID", e.TraceID, false),
		checkJSONObject("Payload", e.Payload),
	); err != nil {
		return nil, err
	}
	if e.Kind != OutboxEntryKind && e.Kind != OutboxSnapshotKind {
		return nil, invalidf("Kind %q is not %q or %q", e.Kind, OutboxEntryKind, OutboxSnapshotKind)
	}
	at := e.CreatedAt
	if at.IsZero() {
		at = now()
	}
	var stored *OutboxEntry
	err := ob.s.write(ctx, func(w querier) (err error) {
		stored, err = scanOutbox(w.queryRow(ctx, sqlOutboxInsert, e.TenantID, e.ProposalID, e.Kind, e.Event,
			e.Payload, e.IdempotencyKey, e.Actor, e.TraceID, ob.s.drv.timeArg(normTime(at))))
		return err
	})
	return stored, ob.s.wrap("add outbox entry", err)
}

func (ob outboxStore) List(ctx context.Context, afterSeq int64, notAfter time.Time, limit int) ([]*OutboxEntry, error) {
	q, args := sqlOutboxList, []any{afterSeq, listLimit(limit)}
	if !notAfter.IsZero() {
		q, args = sqlOutboxListOld, append(args, ob.s.drv.timeArg(normTime(notAfter)))
	}
	rs, err := ob.s.r.query(ctx, q, args...)
	if err != nil {
		return nil, ob.s.wrap("list outbox", err)
	}
	out, err := collect(rs, scanOutbox)
	return out, ob.s.wrap("list outbox", err)
}

func (ob outboxStore) Delete(ctx context.Context, seqs []int64) error {
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), MaxListLimit)]
		seqs = seqs[len(chunk):]
		args := make([]any, len(chunk))
		for i, s := range chunk {
			args[i] = s
		}
		q := `DELETE FROM audit_outbox WHERE seq IN (` + inList(1, len(chunk)) + `)`
		if err := ob.s.write(ctx, func(w querier) error { _, err := w.exec(ctx, q, args...); return err }); err != nil {
			return ob.s.wrap("delete outbox entries", err)
		}
	}
	return nil
}
