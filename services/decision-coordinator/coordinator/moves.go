// moves.go holds how a proposal moves: one transition or a chain of them committed in
// one transaction as compare-and-swaps on the proposal's version, with their audit
// events (move, moveAudited, moveChain, planMoveFrom, applyMove), the cache update
// after the commit (remember), the log line (logMove) and the audit payload of a
// transition (transitionPayload).

package coordinator

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/events"
	"github.com/decision-fabric/fabric/internal/store"
)

// move performs one legal transition, updating the decision record with edit, as a
// compare-and-swap on the proposal's version, audited as "proposal.<to>".
func (s *Service) move(ctx context.Context, p *store.Proposal, to string, edit func(d *coordinatorv1.Proposal), post string) (*store.Proposal, error) {
	return s.moveAudited(ctx, p, to, transitionEvent(to), edit, columns{post: post})
}

// moveAudited is move with an explicit audit event name, for moves whose meaning is not
// the status they land in (a dry run recorded while approval is pending), with the
// events in before audited ahead of the transition.
func (s *Service) moveAudited(ctx context.Context, p *store.Proposal, to, event string, edit func(d *coordinatorv1.Proposal), cols columns, before ...auditEvent) (*store.Proposal, error) {
	return s.moveChain(ctx, p, nil, moveStep{to: to, event: event, edit: edit, cols: cols, before: before})
}

// moveStep is one transition of a chain committed together.
type moveStep struct {
	to string
	// event is the audit event's name; "" is the transition's ("proposal.<to>").
	event  string
	edit   func(d *coordinatorv1.Proposal)
	cols   columns
	before []auditEvent // audited ahead of the transition
	after  []auditEvent // audited after it
	// when, if set, decides from the decision record as planned so far whether the
	// step runs at all.
	when func(d *coordinatorv1.Proposal) bool
}

// moveChain performs legal transitions one after the other in ONE transaction — with
// their audit events and whatever extra writes — so that a decision pays one durable
// commit for what it learned at once (an agreement and its score). Everything that can
// be computed before the transaction is (the decision records, the audit payloads): on
// SQLite the transaction runs on the store's single writer. After the commit the
// events are delivered and long polls woken.
func (s *Service) moveChain(ctx context.Context, p *store.Proposal, extra func(tx store.Store) error, steps ...moveStep) (*store.Proposal, error) {
	moves, events, err := planChain(p, steps...)
	if err != nil {
		return nil, err
	}
	if len(moves) == 0 {
		return p, nil
	}
	entries, err := s.outboxEntries(ctx, p.TenantID, p.ID, events...)
	if err != nil {
		return nil, err
	}
	stored := make([]*store.Proposal, len(moves))
	var staged []*store.OutboxEntry
	err = s.deps.Store.InTx(ctx, func(tx store.Store) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		from := p
		for i, m := range moves {
			next, err := s.applyMove(ctx, tx, from, m)
			if err != nil {
				return err
			}
			stored[i], from = next, next
		}
		var err error
		staged, err = stageIn(ctx, tx, entries)
		return err
	})
	if err != nil {
		return nil, storeError(err)
	}
	from := p
	for i, m := range moves {
		remember(stored[i], m)
		s.logMove(ctx, from, stored[i])
		from = stored[i]
	}
	s.deliver(ctx, staged)
	s.kickEvents()
	s.changes.notify(p.ID)
	return from, nil
}

// planChain computes the moves of a chain from p and their audit events, in order,
// changing nothing: what moveChain commits, and what a rehearsal lists.
func planChain(p *store.Proposal, steps ...moveStep) ([]*plannedMove, []auditEvent, error) {
	shared, err := decision(p)
	if err != nil {
		return nil, nil, err
	}
	return planChainFrom(p, shared, steps...)
}

// planChainFrom is planChain from p with decision record shared (not modified).
func planChainFrom(p *store.Proposal, shared *coordinatorv1.Proposal, steps ...moveStep) ([]*plannedMove, []auditEvent, error) {
	cur := p
	var moves []*plannedMove
	var events []auditEvent
	for _, st := range steps {
		if st.when != nil && !st.when(shared) {
			continue
		}
		m, err := planMoveFrom(cur, shared, st.to, st.edit, st.cols)
		if err != nil {
			return nil, nil, err
		}
		event := st.event
		if event == "" {
			event = transitionEvent(st.to)
		}
		events = append(events, st.before...)
		events = append(events, transitionAudit(m.next, event, transitionPayload(cur.Status, m.next, m.d)))
		events = append(events, st.after...)
		moves = append(moves, m)
		cur, shared = m.next, m.d
	}
	return moves, events, nil
}

// plannedMove is a transition computed before the store's transaction.
type plannedMove struct {
	change store.ProposalChange
	// next is the proposal as the move will leave it (the store sets UpdatedAt).
	next *store.Proposal
	d    *coordinatorv1.Proposal // next's decision record
}

// planMoveFrom checks that p may move to status to and computes the move: the decision
// record (p's decoded record shared, which is not modified) edited by edit, and the
// columns set beside it.
func planMoveFrom(p *store.Proposal, shared *coordinatorv1.Proposal, to string, edit func(d *coordinatorv1.Proposal), cols columns) (*plannedMove, error) {
	if p.Status != to && !legal(p.Status, to) {
		return nil, status.Errorf(codes.FailedPrecondition, "proposal %s cannot go from %s to %s", p.ID, p.Status, to)
	}
	d := proto.Clone(shared).(*coordinatorv1.Proposal)
	if edit != nil {
		edit(d)
	}
	raw, err := decisionJSON(d)
	if err != nil {
		return nil, err
	}
	post := cols.post
	if post == "" {
		post = p.PostStateSHA256
	}
	dryRun := p.DryRun
	if to == stApproved {
		dryRun = false // P3: an approver is recorded; real enactment may follow a passed dry run
	}
	next := *p
	if cols.impact != "" {
		next.Impact, dryRun = cols.impact, true
	}
	next.Status, next.DryRun, next.Decision, next.PostStateSHA256, next.Version = to, dryRun, raw, post, p.Version+1
	if cols.bundle != nil {
		next.ConsensusBundle = cols.bundle
	}
	return &plannedMove{
		change: store.ProposalChange{Status: to, DryRun: dryRun, Decision: raw, PostStateSHA256: post, ConsensusBundle: cols.bundle, Impact: cols.impact},
		next:   &next, d: d,
	}, nil
}

// applyMove stores a planned move through st, as a compare-and-swap on p's status and
// version, with its lifecycle event (stageEvent) in the same transaction: every
// transition the coordinator commits goes through here.
func (s *Service) applyMove(ctx context.Context, st store.Store, p *store.Proposal, m *plannedMove) (*store.Proposal, error) {
	next, err := st.Proposals().Advance(ctx, p.TenantID, p.ID, p.Status, p.Version, m.change)
	if err != nil {
		return nil, storeError(err)
	}
	if err := s.stageEvent(ctx, st, p.Status, next, m.d.GetReason()); err != nil {
		return nil, err
	}
	return next, nil
}

// stageEvent writes the lifecycle event of next having come from status from (""
// for a submission) into the event outbox through st, the transaction of the
// transition; the event relay publishes it to Kafka after the commit
// (docs/events.md). Without a relay (no KAFKA_URL) there is none.
func (s *Service) stageEvent(ctx context.Context, st store.Store, from string, next *store.Proposal, reason string) error {
	if s.deps.Events == nil {
		return nil
	}
	at := next.UpdatedAt
	if at.IsZero() {
		at = s.deps.Now()
	}
	e, err := events.New(next.TenantID, next.ID, from, next.Status, reason, next.Version, at)
	if err != nil {
		return err
	}
	if _, err := st.EventOutbox().Add(ctx, e); err != nil {
		return storeError(err)
	}
	return nil
}

// remember caches the decision record of a committed move (it is already decoded).
// Only after the commit: a rolled-back version must not be remembered.
func remember(next *store.Proposal, m *plannedMove) {
	decisions.Add(decisionKey{next.ID, next.Version}, m.d)
}

func (s *Service) logMove(ctx context.Context, from, to *store.Proposal) {
	s.deps.Logger.InfoContext(ctx, "proposal transition", "proposal_id", from.ID, "tenant_id", from.TenantID, "from", from.Status, "to", to.Status)
}

// transitionPayload is what the audit log records of a transition: the hashes and
// verdicts that let an auditor replay the decision, no manifest content.
// d is p's decision record.
func transitionPayload(from string, p *store.Proposal, d *coordinatorv1.Proposal) map[string]any {
	out := map[string]any{"from": from, "manifest_sha256": p.ManifestSHA256, "pre_state_sha256": p.PreStateSHA256}
	if p.PostStateSHA256 != "" {
		out["post_state_sha256"] = p.PostStateSHA256
	}
	if v := d.GetVotes(); v != nil {
		out["negotiation_id"] = v.GetNegotiationId()
		out["votes"] = map[string]any{"accept": v.GetAccept(), "reject": v.GetReject(), "counter": v.GetCounter(), "abstain": v.GetAbstain(), "outcome": v.GetOutcome()}
	}
	if sc := d.GetScore(); sc != nil {
		out["confidence"] = sc.GetConfidence()
		out["risk_level"] = sc.GetRiskLevel()
	}
	if dr := d.GetDryRunResult(); dr != nil {
		out["dry_run_passed"] = dr.GetPassed()
		out["planned_post_state_sha256"] = dr.GetPlannedPostStateSha256()
	}
	if d.GetReason() != "" {
		out["reason"] = d.GetReason()
	}
	// The consensus bundle's digest ties the signed bundle into the audit log (the
	// offline verifier looks for it).
	if sum := bundleSHA256(p, d); sum != "" {
		out["consensus_bundle_sha256"] = sum
	} else if e := d.GetConsensusError(); e != "" {
		out["consensus_error"] = e
	}
	return out
}
