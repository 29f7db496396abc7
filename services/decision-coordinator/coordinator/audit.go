package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/telemetry"
)

// Auditor appends lifecycle events to the decision auditor's log.
type Auditor interface {
	// Append records events, in order and together (one durable commit). Each key
	// makes its append idempotent: a retry with the same key records nothing new.
	Append(ctx context.Context, events ...AuditRecord) error
	// RecordSnapshot records a pre or post snapshot's SHA256 for the proposal (P7),
	// e.Event being the kind; recording the same kind twice is not an error.
	RecordSnapshot(ctx context.Context, e AuditRecord, sha256 string) error
}

// AuditRecord is one event as the auditor receives it.
type AuditRecord struct {
	TenantID, ProposalID string
	Event                string
	// Payload is a JSON object: hashes and small facts, never raw manifests.
	Payload map[string]any
	Key     string
	// Actor and TraceID are the principal and the trace of the request that caused the
	// event (the auditor records them instead of the relaying service's).
	Actor, TraceID string
}

// Audit events go through a transactional outbox. Each event is written to the store's
// audit outbox in the same transaction as the change it records, then delivered to the
// auditor right after the commit, in order. When the auditor cannot take it (down,
// unreachable), the event stays in the outbox and the relay delivers it later: no
// event is lost, and the change itself never waits for, or fails because of, the
// auditor. Delivery is idempotent (the auditor keeps one entry per key), so delivering
// twice after a crash is harmless.

// auditEvent is one audit event to stage with a change.
type auditEvent struct {
	kind    string // store.OutboxEntryKind or store.OutboxSnapshotKind
	event   string // the event name; for a snapshot, its kind ("pre" or "post")
	payload map[string]any
	key     string
}

// transitionAudit is the event of p having reached its current status and version.
func transitionAudit(p *store.Proposal, event string, payload map[string]any) auditEvent {
	if payload == nil {
		payload = map[string]any{}
	}
	payload["status"] = p.Status
	payload["version"] = p.Version
	return auditEvent{kind: store.OutboxEntryKind, event: event, payload: payload, key: fmt.Sprintf("%s:%d:%s", p.ID, p.Version, event)}
}

// snapshotAudit is the reference to p's pre or post snapshot (P7).
func snapshotAudit(p *store.Proposal, kind, sha string) auditEvent {
	return auditEvent{kind: store.OutboxSnapshotKind, event: kind, payload: map[string]any{"sha256": sha}, key: p.ID + ":snapshot:" + kind}
}

// transitionEvent names the audit event of a move to status to.
func transitionEvent(to string) string {
	return "proposal." + strings.ToLower(to)
}

// outboxEntries renders events for a proposal as outbox entries, before the
// transaction that stores them (stageIn). With no auditor wired there are none.
// The entries carry the principal and trace of the request in ctx, which caused them.
func (s *Service) outboxEntries(ctx context.Context, tenantID, proposalID string, events ...auditEvent) ([]*store.OutboxEntry, error) {
	if s.deps.Audit == nil {
		return nil, nil
	}
	var actor string
	trace := telemetry.TraceID(ctx)
	if c, ok := ctx.Value(causeKey{}).(cause); ok {
		// The lifecycle engine acts on behalf of the proposal's submission; a vote
		// relayed by the hil-gateway is the approver's.
		actor = c.actor
		if trace == "" {
			trace = c.trace
		}
	} else if p := auth.FromContext(ctx); p != nil {
		actor = p.Actor()
	}
	out := make([]*store.OutboxEntry, 0, len(events))
	for _, e := range events {
		payload, err := json.Marshal(e.payload)
		if err != nil {
			return nil, fmt.Errorf("coordinator: audit payload of %s: %w", e.event, err)
		}
		out = append(out, &store.OutboxEntry{TenantID: tenantID, ProposalID: proposalID, Kind: e.kind,
			Event: e.event, Payload: payload, IdempotencyKey: e.key, Actor: actor, TraceID: trace})
	}
	return out, nil
}

// stageIn writes entries into the outbox through st (the transaction of the change
// they record) and returns them as stored, in order.
func stageIn(ctx context.Context, st store.Store, entries []*store.OutboxEntry) ([]*store.OutboxEntry, error) {
	out := make([]*store.OutboxEntry, 0, len(entries))
	for _, e := range entries {
		staged, err := st.Outbox().Add(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, staged)
	}
	return out, nil
}

// deliver hands staged events to the auditor now, in order. The first one the auditor
// does not take stops the delivery: it and the rest stay for the relay, which then
// delivers everything in the outbox in order (the backlog) before the request path
// delivers again.
func (s *Service) deliver(ctx context.Context, entries []*store.OutboxEntry) {
	if len(entries) == 0 || s.relay == nil {
		return
	}
	if s.relay.locks != nil {
		// Replicas: only the tenant's relay delivers, in the outbox's order. Wake this
		// process's and, for a client's request, wait for its next sweep: when this
		// process leads the tenant, the events are in the log before the answer, as on
		// a single process. The lifecycle engine's steps (which continue a request)
		// do not wait.
		if _, engine := ctx.Value(causeKey{}).(cause); engine {
			s.relay.kick()
			return
		}
		s.relay.flush(ctx)
		return
	}
	if s.relay.backlog.Load() {
		s.metrics.outboxDeferred.Add(float64(len(entries)))
		s.relay.kick()
		return
	}
	sent, err := s.sendAll(ctx, entries)
	for _, e := range entries[:sent] {
		s.relay.delivered(e.Seq)
	}
	if err != nil {
		e := entries[sent]
		s.deps.Logger.WarnContext(ctx, "audit delivery deferred to the relay", "proposal_id", e.ProposalID, "event", e.Event, "error", err)
		s.metrics.outboxDeferred.Add(float64(len(entries) - sent))
		s.relay.backlog.Store(true)
		s.relay.kick()
	}
}

// sendAll delivers entries in order: each run of events in one Append, each snapshot
// reference on its own. It returns how many were delivered before the first failure.
func (s *Service) sendAll(ctx context.Context, entries []*store.OutboxEntry) (int, error) {
	done := 0
	for done < len(entries) {
		if entries[done].Kind == store.OutboxSnapshotKind {
			if err := s.send(ctx, entries[done]); err != nil {
				return done, err
			}
			done++
			continue
		}
		end := done
		for end < len(entries) && entries[end].Kind != store.OutboxSnapshotKind && end-done < maxAppendBatch &&
			entries[end].TenantID == entries[done].TenantID {
			end++
		}
		recs := make([]AuditRecord, 0, end-done)
		for _, e := range entries[done:end] {
			rec, err := record(e)
			if err != nil {
				return done, err
			}
			recs = append(recs, rec)
		}
		if err := s.deps.Audit.Append(ctx, recs...); err != nil {
			return done, err
		}
		done = end
	}
	return done, nil
}

// maxAppendBatch is the most events sent in one Append (the auditor takes 100).
const maxAppendBatch = 100

// record is an outbox entry as the auditor receives it.
func record(e *store.OutboxEntry) (AuditRecord, error) {
	var payload map[string]any
	if err := json.Unmarshal(e.Payload, &payload); err != nil {
		return AuditRecord{}, status.Errorf(codes.DataLoss, "coordinator: outbox entry %d is unreadable: %v", e.Seq, err)
	}
	return AuditRecord{TenantID: e.TenantID, ProposalID: e.ProposalID, Event: e.Event, Payload: payload,
		Key: e.IdempotencyKey, Actor: e.Actor, TraceID: e.TraceID}, nil
}

// send delivers one outbox entry.
func (s *Service) send(ctx context.Context, e *store.OutboxEntry) error {
	rec, err := record(e)
	if err != nil {
		return err
	}
	if e.Kind == store.OutboxSnapshotKind {
		sha, _ := rec.Payload["sha256"].(string)
		return s.deps.Audit.RecordSnapshot(ctx, rec, sha)
	}
	return s.deps.Audit.Append(ctx, rec)
}

// RelayCommitLabel names the audit relay's commits for store observers: they are off
// every decision's critical path.
const RelayCommitLabel = "audit-relay"

// The relay's timing.
const (
	relayInterval = time.Second     // how often it sweeps the outbox
	relayGrace    = 3 * time.Second // an entry younger than this is still the request's to deliver
	relayBatch    = 200
)

// healthChecks reports the audit outbox on GET /health: "ok", or how many events wait
// for the auditor. A backlog does not make the coordinator unhealthy (it keeps
// deciding; the events are kept and delivered in order when the auditor is back), so
// it informs without degrading the status.
//
// With Kafka (KAFKA_URL), "event_relay" reports the lifecycle event relay the same way:
// "ok", or its backlog and last error.
func (s *Service) healthChecks(context.Context) map[string]string {
	out := map[string]string{}
	if s.deps.Events != nil {
		out["event_relay"] = s.deps.Events.Health()
	}
	if s.relay == nil {
		return out
	}
	n, backlog := s.relay.pending.Load(), s.relay.backlog.Load()
	if n == 0 && !backlog {
		out["audit_outbox"] = "ok"
		return out
	}
	out["audit_outbox"] = fmt.Sprintf(
		"%d event(s) waiting for the auditor after the last sweep; retried every %s, in order", n, relayInterval)
	return out
}

// relay delivers what the request path could not, and deletes what was delivered. One
// relay runs per coordinator process.
//
// On a store that several processes may share (Postgres), each tenant's events are
// delivered by one relay alone, the tenant's leader: the relay that holds the tenant's
// leader lock (store.Locks, a session advisory lock that a crashed process's
// connection releases). It delivers the tenant's events in the outbox's order, and the
// request path delivers nothing itself (it waits for its own relay's next sweep, see
// flush): two processes never race each other's events of one proposal into the log
// out of order. A relay that finds a tenant's lock held elsewhere leaves its events to
// that leader, and takes the lock over when the leader is gone. On SQLite (one process)
// locks is nil and the request path delivers, the relay catching up behind it.
type relay struct {
	s     *Service
	locks store.Locks // nil: the store is this process's alone
	mu    sync.Mutex
	done  []int64 // delivered by the request path, not yet deleted
	// backlog is set when a delivery failed: until the relay has caught up, every
	// event is left to it, so events reach the auditor in the order they happened.
	backlog atomic.Bool
	// pending is how many events the last sweep left waiting (the exported gauge).
	pending atomic.Int64

	wake, stop, exited chan struct{}
	once               sync.Once

	// Sweeps are counted (locks mode): flush waits for one that starts after it asked.
	gen      sync.Mutex
	started  uint64
	finished uint64
	swept    chan struct{} // closed when the running sweep finishes
}

func newRelay(s *Service) *relay {
	r := &relay{s: s, wake: make(chan struct{}, 1), stop: make(chan struct{}), exited: make(chan struct{}), swept: make(chan struct{})}
	if s.deps.Store.Backend() == store.BackendPostgres {
		locks, err := store.NewLocks(s.deps.Store)
		if err != nil {
			// A wrapped store (tests): the request path delivers, as on one process.
			s.deps.Logger.Warn("audit relay: no leader locks on this store; delivering from every process", "error", err)
		} else {
			r.locks = locks
		}
	}
	return r
}

// relayFlushWait bounds how long a request waits for its relay's sweep.
const relayFlushWait = 5 * time.Second

// flush wakes the relay and waits until a sweep that started after the call has
// finished (bounded by ctx and relayFlushWait): the events this request committed have
// been delivered, if this process leads their tenant. Concurrent requests share
// sweeps.
func (r *relay) flush(ctx context.Context) {
	r.gen.Lock()
	want := r.started + 1
	r.gen.Unlock()
	r.kick()
	timer := time.NewTimer(relayFlushWait)
	defer timer.Stop()
	for {
		r.gen.Lock()
		done, swept := r.finished, r.swept
		r.gen.Unlock()
		if done >= want {
			return
		}
		select {
		case <-swept:
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-r.exited:
			return
		}
	}
}

// kick asks for a sweep now.
func (r *relay) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// delivered notes that entries reached the auditor; the next sweep deletes them.
func (r *relay) delivered(seqs ...int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.done = append(r.done, seqs...)
	r.mu.Unlock()
}

// forget deletes delivered entries from the outbox; on failure the next sweep tries
// again (a re-delivery in between is harmless).
func (r *relay) forget(ctx context.Context, seqs []int64) {
	if len(seqs) == 0 {
		return
	}
	if err := r.s.deps.Store.Outbox().Delete(ctx, seqs); err != nil {
		r.s.deps.Logger.WarnContext(ctx, "audit outbox: delete delivered entries", "error", err)
		r.delivered(seqs...)
	}
}

func (r *relay) run() {
	defer close(r.exited)
	t := time.NewTicker(relayInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.wake:
		}
		ctx, cancel := context.WithTimeout(store.WithCommitLabel(context.Background(), RelayCommitLabel), 30*time.Second)
		if r.locks == nil {
			r.sweep(ctx)
		} else {
			r.gen.Lock()
			r.started++
			gen := r.started
			r.gen.Unlock()
			r.sweepLed(ctx)
			r.gen.Lock()
			r.finished = gen
			close(r.swept)
			r.swept = make(chan struct{})
			r.gen.Unlock()
		}
		cancel()
	}
}

// close stops the relay and releases its leader locks; what is left in the outbox is
// delivered after the next start, or by the relay that takes the tenants over.
func (r *relay) close() {
	r.once.Do(func() { close(r.stop) })
	<-r.exited
	if r.locks != nil {
		if err := r.locks.Close(); err != nil {
			r.s.deps.Logger.Warn("audit relay: release the leader locks", "error", err)
		}
	}
}

// relayLockName is the leader lock of a tenant's audit relay.
func relayLockName(tenant string) string { return "audit-relay/" + tenant }

// sweepLed delivers, in the outbox's order, the events of the tenants this relay
// leads, taking the lock of a tenant no relay leads. A tenant whose auditor call fails
// retryably is left for the next sweep from the same event (its order holds); the
// other tenants go on.
func (r *relay) sweepLed(ctx context.Context) {
	log := r.s.deps.Logger
	pending := 0
	defer func() {
		r.pending.Store(int64(pending))
		r.s.metrics.outboxPending.Set(float64(pending))
	}()
	if err := r.locks.Check(ctx); err != nil {
		log.WarnContext(ctx, "audit relay: leader locks lost; taking them again", "error", err)
	}
	led := map[string]bool{}     // tenant → this relay leads it (asked once per sweep)
	blocked := map[string]bool{} // tenants stopped in this sweep (auditor unavailable)
	var after int64
	for {
		entries, err := r.s.deps.Store.Outbox().List(ctx, after, time.Time{}, relayBatch)
		if err != nil {
			log.WarnContext(ctx, "audit outbox: list", "error", err)
			return
		}
		var order []string
		byTenant := map[string][]*store.OutboxEntry{}
		for _, e := range entries {
			after = e.Seq
			t := e.TenantID
			if blocked[t] {
				pending++
				continue
			}
			lead, asked := led[t]
			if !asked {
				if lead, err = r.locks.TryLock(ctx, relayLockName(t)); err != nil {
					log.WarnContext(ctx, "audit relay: leader lock", "tenant_id", t, "error", err)
				}
				led[t] = lead
			}
			if !lead {
				continue // another process's relay leads this tenant
			}
			if byTenant[t] == nil {
				order = append(order, t)
			}
			byTenant[t] = append(byTenant[t], e)
		}
		var sent []int64
		for _, t := range order {
			list := byTenant[t]
			for len(list) > 0 {
				n, err := r.s.sendAll(ctx, list)
				for _, e := range list[:n] {
					sent = append(sent, e.Seq)
				}
				r.s.metrics.outboxRelayed.Add(float64(n))
				if err == nil {
					break
				}
				e := list[n]
				if retryable(err) {
					log.WarnContext(ctx, "audit outbox: auditor unavailable; will retry", "tenant_id", t, "seq", e.Seq, "error", err)
					blocked[t] = true
					pending += len(list) - n
					break
				}
				pending++
				log.ErrorContext(ctx, "audit outbox: entry refused by the auditor; left in the outbox", "seq", e.Seq,
					"proposal_id", e.ProposalID, "event", e.Event, "error", err)
				list = list[n+1:]
			}
		}
		r.forget(ctx, sent)
		if len(entries) < relayBatch {
			return
		}
	}
}

// sweep deletes the entries the request path delivered, then delivers, in order, the
// entries older than relayGrace (all of them while there is a backlog). An auditor that
// is unavailable ends the sweep (the next one retries from the same entry, so order
// holds); an entry the auditor refuses for good is logged and left in place.
func (r *relay) sweep(ctx context.Context) {
	log := r.s.deps.Logger
	backlog := r.backlog.Load()
	cutoff := r.s.deps.Now().Add(-relayGrace)
	if backlog {
		cutoff = time.Time{}
	}
	r.mu.Lock()
	done := r.done
	r.done = nil
	r.mu.Unlock()
	skip := make(map[int64]bool, len(done))
	for _, seq := range done {
		skip[seq] = true
	}
	r.forget(ctx, done)

	pending := 0 // entries left waiting: refused ones, and all from an unavailable auditor on
	defer func() {
		r.pending.Store(int64(pending))
		r.s.metrics.outboxPending.Set(float64(pending))
	}()
	var after int64
	for {
		entries, err := r.s.deps.Store.Outbox().List(ctx, after, cutoff, relayBatch)
		if err != nil {
			log.WarnContext(ctx, "audit outbox: list", "error", err)
			return
		}
		var sent []int64
		for i, e := range entries {
			after = e.Seq
			if skip[e.Seq] {
				continue
			}
			err := r.s.send(ctx, e)
			switch {
			case err == nil:
				sent = append(sent, e.Seq)
				r.s.metrics.outboxRelayed.Inc()
			case retryable(err):
				log.WarnContext(ctx, "audit outbox: auditor unavailable; will retry", "seq", e.Seq, "error", err)
				r.forget(ctx, sent)
				pending += len(entries) - i // at least: later pages were not read
				return
			default:
				pending++
				log.ErrorContext(ctx, "audit outbox: entry refused by the auditor; left in the outbox", "seq", e.Seq,
					"proposal_id", e.ProposalID, "event", e.Event, "error", err)
			}
		}
		r.forget(ctx, sent)
		if len(entries) < relayBatch {
			if backlog {
				r.backlog.Store(false) // caught up: the request path delivers again
			}
			return
		}
	}
}

// retryable: the auditor may take the entry later.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown, codes.Canceled:
		return true
	}
	return false
}

type causeKey struct{}

// cause is the request an engine step continues: its events are attributed to the
// principal and trace that submitted the proposal.
type cause struct{ actor, trace string }

// onBehalfOf is ctx for steps that continue p's submission.
func onBehalfOf(ctx context.Context, p *store.Proposal) context.Context {
	return context.WithValue(ctx, causeKey{}, cause{actor: p.CreatedBy, trace: p.TraceID})
}
