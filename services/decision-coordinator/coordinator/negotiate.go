// negotiate.go holds the engine's steps up to the regions' outcome: step (what the
// engine does next with a proposal), requesting and following the negotiation within
// its deadline (requestNegotiation, negotiate, deadline, endNegotiation), and recording
// its outcome — reclassified on the agreed manifest, sealed in a consensus bundle and
// scored in the same commit (recordOutcome, reclassifyAgreed, summarise, voteAudits).

package coordinator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
)

// step moves p one step along the engine's part of the lifecycle: it starts or follows
// the negotiation of a NEGOTIATING proposal and records its outcome (with the score,
// when the regions agreed, in the same commit), requests the negotiation of a SUBMITTED
// one, and scores an AGREED one. It returns the proposal as moved, or nil when it did
// not move (the negotiation is still running: the engine calls again).
func (s *Service) step(ctx context.Context, p *store.Proposal) (*store.Proposal, error) {
	switch p.Status {
	case stSubmitted:
		return s.requestNegotiation(ctx, p)
	case stNegotiating:
		return s.negotiate(ctx, p)
	case stAgreed:
		return s.scoreAgreed(ctx, p)
	case stPendingApproval:
		return s.awaitApproval(ctx, p)
	}
	return nil, nil
}

// expireGrace is how long past a deadline the coordinator waits for the negotiator to
// end a negotiation itself before ending the proposal EXPIRED on its own.
const expireGrace = 5 * time.Second

// deadline is when p's negotiation must have ended (P6): its submission plus the
// policy's decision timeout (DecisionTimeout for proposals recorded without one).
func (s *Service) deadline(p *store.Proposal, d *coordinatorv1.Proposal) time.Time {
	timeout := time.Duration(d.GetPolicy().GetDecisionTimeoutMs()) * time.Millisecond
	if timeout <= 0 {
		timeout = s.deps.DecisionTimeout
	}
	return p.CreatedAt.Add(timeout)
}

// negotiationMove is the move to NEGOTIATING: it records the id the negotiation will
// have, so that a start retried after a crash finds the same negotiation.
func negotiationMove(now time.Time) moveStep {
	id := newID(now)
	return moveStep{to: stNegotiating, edit: func(d *coordinatorv1.Proposal) {
		d.Votes = &coordinatorv1.VoteSummary{NegotiationId: id}
	}}
}

// requestNegotiation moves a SUBMITTED proposal (one submitted without a negotiator,
// or before the engine) to NEGOTIATING; the next step starts the negotiation.
func (s *Service) requestNegotiation(ctx context.Context, p *store.Proposal) (*store.Proposal, error) {
	if s.deps.Negotiator == nil {
		return nil, nil
	}
	d, err := decision(p)
	if err != nil {
		return nil, err
	}
	if deadline := s.deadline(p, d); !s.deps.Now().Before(deadline) {
		// Never negotiated after its deadline: it ends EXPIRED, in the same commit.
		return s.moveChain(ctx, p, nil, negotiationMove(s.deps.Now()), endStep(stExpired, neverStarted(deadline)))
	}
	return s.moveChain(ctx, p, nil, negotiationMove(s.deps.Now()))
}

// negotiate starts (or finds again) p's negotiation while its deadline has not passed,
// follows it until it ends and records the outcome. Past the deadline nothing is
// started: a negotiation the negotiator never had ends the proposal EXPIRED, and one
// still running after the grace period too.
func (s *Service) negotiate(ctx context.Context, p *store.Proposal) (*store.Proposal, error) {
	if s.deps.Negotiator == nil {
		return nil, nil
	}
	d, err := decision(p)
	if err != nil {
		return nil, err
	}
	id := d.GetVotes().GetNegotiationId()
	if id == "" { // recorded before negotiations had their id chosen here
		return s.moveChain(ctx, p, nil, negotiationMove(s.deps.Now()))
	}
	deadline := s.deadline(p, d)
	var n *negotiatorv1.Negotiation
	if s.deps.Now().Before(deadline) {
		m, err := submittedManifest(p)
		if err != nil {
			return nil, err
		}
		n, err = s.deps.Negotiator.Start(ctx, NegotiationRequest{
			TenantID: p.TenantID, ProposalID: p.ID, NegotiationID: id,
			Manifest: m, ManifestSHA256: p.ManifestSHA256,
			Quorum: d.GetPolicy().GetQuorum(), Deadline: deadline,
		})
		if err != nil {
			if refusedForGood(err) {
				return s.endNegotiation(ctx, p, stRejected, "the negotiator refused to negotiate: "+status.Convert(err).Message())
			}
			return nil, fmt.Errorf("coordinator: start negotiation: %w", err)
		}
	} else {
		n, err = s.deps.Negotiator.Status(ctx, p.TenantID, id)
		if status.Code(err) == codes.NotFound {
			return s.endNegotiation(ctx, p, stExpired, neverStarted(deadline))
		}
		if err != nil {
			return nil, fmt.Errorf("coordinator: negotiation status: %w", err)
		}
	}
	if n.GetState() == negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING {
		if s.deps.Now().After(deadline.Add(expireGrace)) {
			return s.endNegotiation(ctx, p, stExpired, fmt.Sprintf(
				"the negotiator had not ended negotiation %s %s after its deadline %s", id, expireGrace, deadline.UTC().Format(time.RFC3339Nano)))
		}
		wctx, cancel := context.WithDeadline(ctx, deadline.Add(expireGrace))
		n, err = s.deps.Negotiator.Wait(wctx, p.TenantID, id)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if wctx.Err() != nil {
				return nil, nil // the next step checks the deadline again
			}
			return nil, fmt.Errorf("coordinator: follow negotiation: %w", err)
		}
		if n.GetState() == negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING {
			return nil, nil
		}
	}
	next, err := s.recordOutcome(ctx, p, d, n)
	if err != nil && !isConflict(err) && s.deps.Now().After(deadline.Add(expireGrace)) {
		// An outcome that cannot be recorded is not retried past the deadline: the
		// proposal ends, failing closed, with the reason.
		return s.endNegotiation(ctx, p, stExpired, "the negotiation's outcome could not be recorded by the deadline: "+err.Error())
	}
	return next, err
}

// refusedForGood: the negotiator will never negotiate this request (a region the
// tenant has no agent for, a manifest it cannot take): retrying cannot help.
func refusedForGood(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.PermissionDenied, codes.NotFound:
		return true
	}
	return false
}

// endNegotiation ends a NEGOTIATING proposal (REJECTED or EXPIRED) for reason, without
// an outcome from the negotiator.
func (s *Service) endNegotiation(ctx context.Context, p *store.Proposal, to, reason string) (*store.Proposal, error) {
	return s.moveChain(ctx, p, nil, endStep(to, reason))
}

// endStep is the move that ends a negotiation (REJECTED or EXPIRED) for reason,
// without an outcome from the negotiator.
func endStep(to, reason string) moveStep {
	return moveStep{to: to, edit: func(d *coordinatorv1.Proposal) {
		d.Reason = reason
		if d.Votes == nil {
			d.Votes = &coordinatorv1.VoteSummary{}
		}
		d.Votes.Outcome = to
	}}
}

// neverStarted is why a proposal whose negotiation never started before deadline
// ends EXPIRED.
func neverStarted(deadline time.Time) string {
	return fmt.Sprintf("the decision deadline %s passed before the negotiation started (no coordinator was running it); nothing was negotiated",
		deadline.UTC().Format(time.RFC3339Nano))
}

// recordOutcome records an ended negotiation: REJECTED or EXPIRED as the negotiator
// says, or AGREED — reclassified on the agreed manifest, sealed in a consensus bundle
// and, when the scorer answers, scored (and sent for approval when the policy asks)
// in the same commit.
func (s *Service) recordOutcome(ctx context.Context, p *store.Proposal, d *coordinatorv1.Proposal, n *negotiatorv1.Negotiation) (*store.Proposal, error) {
	summary := summarise(n)
	var to string
	switch n.GetState() {
	case negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED:
		to = stAgreed
	case negotiatorv1.NegotiationState_NEGOTIATION_STATE_REJECTED:
		to = stRejected
	case negotiatorv1.NegotiationState_NEGOTIATION_STATE_EXPIRED:
		to = stExpired
	default:
		return nil, nil // still running
	}
	// The agreed manifest is what would be enacted: the policy runs again on it. A
	// change the policy now refuses is REJECTED; one that asks for more approval than
	// the proposal was classified at goes to the approval path (score then moves it to
	// PENDING_APPROVAL), recorded with its reasons.
	var cols columns
	audits := voteAudits(n)
	var re *reclassification
	var err error
	if to == stAgreed && n.GetFinalManifest() != nil {
		// An agreed manifest that cannot be recorded (a value JSON cannot carry) is
		// not an agreement the fabric can enact.
		if _, err := protojson.Marshal(n.GetFinalManifest()); err != nil {
			return s.endNegotiation(ctx, p, stRejected, "the regions agreed on a manifest that cannot be recorded: "+err.Error())
		}
	}
	// agreed is the manifest agreed on: the submitted one when the regions did not
	// change it.
	var agreed *typesv1.Manifest
	if to == stAgreed {
		if agreed = n.GetFinalManifest(); agreed == nil {
			if agreed, err = submittedManifest(p); err != nil {
				return nil, err
			}
		}
		re = s.reclassifyAgreed(ctx, p, d, agreed)
	}
	if re != nil {
		audits = append(audits, re.audit(p))
		if re.refused != nil {
			to = stRejected
		} else {
			cols.impact = re.to
		}
	}
	// P2: an agreement is packaged as a signed consensus bundle, stored beside the
	// decision record. Without one (the certificate does not verify, no signing key)
	// the proposal is still AGREED, with the reason recorded; enactment outside
	// simulation then refuses it.
	var cbErr string
	if to == stAgreed {
		sb, err := s.consensusBundle(p, d, n)
		if err == nil {
			cols.bundle, err = sb.Encode()
		}
		if err == nil {
			rememberBundle(p.ID, cols.bundle, sb)
		}
		if err != nil {
			cols.bundle, cbErr = nil, err.Error()
			s.deps.Logger.WarnContext(ctx, "no consensus bundle", "proposal_id", p.ID, "negotiation_id", n.GetId(), "error", err)
		}
	}
	steps := []moveStep{{to: to, cols: cols, before: audits, edit: func(d *coordinatorv1.Proposal) {
		d.Votes = summary
		d.Reason = n.GetReason()
		if to == stAgreed {
			d.AgreedManifest = n.GetFinalManifest()
			d.ConsensusError = cbErr
		}
		switch {
		case re == nil:
		case re.refused != nil:
			d.Reason = "the regions agreed on a change the policy refuses: " + status.Convert(re.refused).Message()
		default:
			re.edit(d)
		}
	}}}
	if to == stAgreed {
		impact := p.Impact
		if cols.impact != "" {
			impact = cols.impact
		}
		// A scorer that fails leaves the proposal AGREED: the engine scores it next.
		if sc, err := s.scoreInput(ctx, p, ScoreInput{TenantID: p.TenantID, ProposalID: p.ID, Manifest: agreed, Impact: impact, Votes: summary}); err == nil {
			steps = append(steps, s.scoredSteps(p, sc)...)
		} else {
			s.deps.Logger.WarnContext(ctx, "score after agreement; retried by the engine", "proposal_id", p.ID, "error", err)
		}
	}
	return s.moveChain(ctx, p, nil, steps...)
}

// reclassifyAgreed classifies the agreed manifest m against the world as it is now.
func (s *Service) reclassifyAgreed(ctx context.Context, p *store.Proposal, d *coordinatorv1.Proposal, m *typesv1.Manifest) *reclassification {
	pre, err := s.deps.World.Read(ctx, p.TenantID, m.GetTarget(), m.GetRegions())
	return s.reclassify(ctx, p, d, m, pre, err, stageAgreement)
}

// summarise counts the final round's votes.
func summarise(n *negotiatorv1.Negotiation) *coordinatorv1.VoteSummary {
	v := &coordinatorv1.VoteSummary{NegotiationId: n.GetId(), Outcome: strings.TrimPrefix(n.GetState().String(), "NEGOTIATION_STATE_")}
	if v.Outcome == "RUNNING" || v.Outcome == "UNSPECIFIED" {
		v.Outcome = ""
	}
	for _, vote := range n.GetVotes() {
		if vote.GetRound() != n.GetRound() {
			continue
		}
		switch vote.GetVerdict() {
		case negotiatorv1.Verdict_VERDICT_ACCEPT:
			v.Accept++
		case negotiatorv1.Verdict_VERDICT_REJECT:
			v.Reject++
		case negotiatorv1.Verdict_VERDICT_COUNTER:
			v.Counter++
		case negotiatorv1.Verdict_VERDICT_ABSTAIN:
			v.Abstain++
		}
	}
	return v
}

// voteAudits are the audit events of a finished negotiation's signed votes, one per
// negotiation, round and region: the evidence behind the outcome, recorded with it.
func voteAudits(n *negotiatorv1.Negotiation) []auditEvent {
	out := make([]auditEvent, 0, len(n.GetVotes()))
	for _, v := range n.GetVotes() {
		out = append(out, auditEvent{kind: store.OutboxEntryKind, event: "negotiation.vote", payload: map[string]any{
			"negotiation_id": n.GetId(), "round": v.GetRound(), "region": v.GetRegion(),
			"verdict": strings.TrimPrefix(v.GetVerdict().String(), "VERDICT_"), "reason": v.GetReason(),
			"key_id": v.GetKeyId(), "signature_sha256": canonical.SHA256Hex([]byte(v.GetSignature())),
		}, key: fmt.Sprintf("vote:%s:%d:%s", n.GetId(), v.GetRound(), v.GetRegion())})
	}
	return out
}
