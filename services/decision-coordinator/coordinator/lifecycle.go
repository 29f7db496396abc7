package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// NegotiationRequest is everything the negotiator needs; it reads no coordinator table.
type NegotiationRequest struct {
	TenantID, ProposalID string
	// NegotiationID is the id the coordinator chose and recorded for the negotiation:
	// a start retried after a crash finds the same negotiation.
	NegotiationID  string
	Manifest       *typesv1.Manifest
	ManifestSHA256 string
	Quorum         string    // the policy's quorum name, e.g. "majority"
	Deadline       time.Time // absolute: a retried start never extends it
}

// Negotiator starts and reads negotiations (the federated negotiator, in process or
// over gRPC). Calls from the lifecycle engine carry no caller: implementations act as
// the fabric's service identity for the tenant.
type Negotiator interface {
	// Start is idempotent per negotiation id: a second start returns the negotiation.
	Start(ctx context.Context, req NegotiationRequest) (*negotiatorv1.Negotiation, error)
	Status(ctx context.Context, tenantID, negotiationID string) (*negotiatorv1.Negotiation, error)
	// Wait returns the negotiation once it has ended, or ctx's error when ctx ends first.
	Wait(ctx context.Context, tenantID, negotiationID string) (*negotiatorv1.Negotiation, error)
}

// ScoreInput is everything the scorer needs; it reads no coordinator table.
type ScoreInput struct {
	TenantID, ProposalID string
	Manifest             *typesv1.Manifest // the manifest to enact (agreed, else submitted)
	Impact               string
	Votes                *coordinatorv1.VoteSummary
	History              *scorerv1.HistoryCounts
}

// Scorer scores proposals (the confidence scorer, in process or over gRPC).
type Scorer interface {
	Score(ctx context.Context, in ScoreInput) (*scorerv1.ScoreResponse, error)
}

// Status names as stored.
var (
	stSubmitted       = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED)
	stNegotiating     = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_NEGOTIATING)
	stAgreed          = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_AGREED)
	stRejected        = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_REJECTED)
	stExpired         = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_EXPIRED)
	stScored          = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SCORED)
	stPendingApproval = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL)
	stApproved        = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_APPROVED)
	stDenied          = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DENIED)
	stDryRunPassed    = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DRY_RUN_PASSED)
	stDryRunFailed    = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DRY_RUN_FAILED)
	stEnacted         = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED)
	stRolledBack      = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ROLLED_BACK)
)

// transitions is the state machine of DESIGN.md: every legal move, and nothing else.
// A move not listed is FAILED_PRECONDITION (HTTP 409) and changes nothing. The moves
// back to PENDING_APPROVAL from APPROVED and the dry-run states are reclassifications:
// the change about to be enacted asks for more approval than was given.
var transitions = map[string][]string{
	stSubmitted:       {stNegotiating},
	stNegotiating:     {stAgreed, stRejected, stExpired},
	stAgreed:          {stScored},
	stScored:          {stPendingApproval, stDryRunPassed, stDryRunFailed},
	stPendingApproval: {stApproved, stDenied},
	stApproved:        {stDryRunPassed, stDryRunFailed, stPendingApproval},
	stDryRunFailed:    {stDryRunPassed, stDryRunFailed, stPendingApproval},
	stDryRunPassed:    {stEnacted, stDryRunPassed, stDryRunFailed, stPendingApproval},
	stEnacted:         {stRolledBack},
}

func legal(from, to string) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}

// decision decodes the proposal's decision record: the decision fields of a
// coordinatorv1.Proposal, stored as canonical protojson. The result is shared and must
// not be modified (planMove edits a clone).
func decision(p *store.Proposal) (*coordinatorv1.Proposal, error) {
	key := decisionKey{p.ID, p.Version}
	if d, ok := decisions.Get(key); ok {
		return d, nil
	}
	d := &coordinatorv1.Proposal{}
	if len(p.Decision) > 0 {
		if err := protojson.Unmarshal(p.Decision, d); err != nil {
			return nil, fmt.Errorf("coordinator: decision record of %s: %w", p.ID, err)
		}
	}
	decisions.Add(key, d)
	return d, nil
}

// Record is p's decision record, decoded (and cached) as the coordinator reads it, for
// services sharing its store. The result is shared and must not be modified.
func Record(p *store.Proposal) (*coordinatorv1.Proposal, error) { return decision(p) }

// decisionJSON encodes a decision record for the store. It is plain protojson, not
// RFC 8785: the record is read back by the coordinator and never hashed or signed (what
// is signed, the consensus bundle, is canonicalised on its own), and canonicalising
// its few kilobytes on every transition was a quarter of the fabric's allocations.
func decisionJSON(d *coordinatorv1.Proposal) ([]byte, error) {
	raw, err := decisionMarshal.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("coordinator: decision record: %w", err)
	}
	return raw, nil
}

var decisionMarshal = protojson.MarshalOptions{UseProtoNames: true}

// decisions caches decoded decision records. A proposal's version identifies its
// record (every change of the record is a compare-and-swap that moves the version on),
// and the record is a few kilobytes of JSON that every step of a request reads again.
var decisions = mustLRU[decisionKey, *coordinatorv1.Proposal](8192)

type decisionKey struct {
	id      string
	version int64
}

func mustLRU[K comparable, V any](size int) *lru.Cache[K, V] {
	c, err := lru.New[K, V](size)
	if err != nil {
		panic(err) // only for size <= 0
	}
	return c
}

// move performs one legal transition, updating the decision record with edit, as a
// compare-and-swap on the proposal's version, audited as "proposal.<to>".
func (s *Service) move(ctx context.Context, p *store.Proposal, to string, edit func(d *coordinatorv1.Proposal), post string) (*store.Proposal, error) {
	return s.moveAudited(ctx, p, to, transitionEvent(to), edit, columns{post: post})
}

// columns are what a move sets beside the decision record.
type columns struct {
	// post is the post-state hash; "" keeps p's.
	post string
	// bundle is the signed consensus bundle's stored form; nil keeps p's.
	bundle []byte
	// impact is a raised impact (a reclassification); "" keeps p's. The proposal then
	// needs an approver, so it is dry run by default until one is recorded (P3).
	impact string
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
	cur, shared := p, (*coordinatorv1.Proposal)(nil)
	var err error
	if shared, err = decision(p); err != nil {
		return nil, err
	}
	var moves []*plannedMove
	var events []auditEvent
	for _, st := range steps {
		if st.when != nil && !st.when(shared) {
			continue
		}
		m, err := planMoveFrom(cur, shared, st.to, st.edit, st.cols)
		if err != nil {
			return nil, err
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
			next, err := applyMove(ctx, tx, from, m)
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
	s.changes.notify(p.ID)
	return from, nil
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
// version.
func applyMove(ctx context.Context, st store.Store, p *store.Proposal, m *plannedMove) (*store.Proposal, error) {
	next, err := st.Proposals().Advance(ctx, p.TenantID, p.ID, p.Status, p.Version, m.change)
	if err != nil {
		return nil, storeError(err)
	}
	return next, nil
}

// remember caches the decision record of a committed move (it is already decoded).
// Only after the commit: a rolled-back version must not be remembered.
func remember(next *store.Proposal, m *plannedMove) {
	decisions.Add(decisionKey{next.ID, next.Version}, m.d)
}

func (s *Service) logMove(ctx context.Context, from, to *store.Proposal) {
	s.deps.Logger.InfoContext(ctx, "proposal transition", "proposal_id", from.ID, "tenant_id", from.TenantID, "from", from.Status, "to", to.Status)
}

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
		return s.moveChain(ctx, p, nil, negotiationMove(s.deps.Now()), moveStep{to: stExpired, edit: func(d *coordinatorv1.Proposal) {
			d.Reason = fmt.Sprintf("the decision deadline %s passed before the negotiation started (no coordinator was running it); nothing was negotiated",
				deadline.UTC().Format(time.RFC3339Nano))
			d.Votes.Outcome = stExpired
		}})
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
			return s.endNegotiation(ctx, p, stExpired, fmt.Sprintf(
				"the decision deadline %s passed before the negotiation started (no coordinator was running it); nothing was negotiated",
				deadline.UTC().Format(time.RFC3339Nano)))
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
	return s.moveChain(ctx, p, nil, moveStep{to: to, edit: func(d *coordinatorv1.Proposal) {
		d.Reason = reason
		if d.Votes == nil {
			d.Votes = &coordinatorv1.VoteSummary{}
		}
		d.Votes.Outcome = to
	}})
}

// submittedManifest decodes p's stored manifest.
func submittedManifest(p *store.Proposal) (*typesv1.Manifest, error) {
	m, err := manifestpkg.Decode(p.Manifest)
	if err != nil {
		return nil, fmt.Errorf("coordinator: stored manifest of %s: %w", p.ID, err)
	}
	return m, nil
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
	if to == stAgreed {
		if re, err = s.reclassifyAgreed(ctx, p, d, n.GetFinalManifest()); err != nil {
			return nil, err
		}
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
		agreed := n.GetFinalManifest()
		if agreed == nil {
			if agreed, err = submittedManifest(p); err != nil {
				return nil, err
			}
		}
		// A scorer that fails leaves the proposal AGREED: the engine scores it next.
		if sc, err := s.scoreInput(ctx, p, ScoreInput{TenantID: p.TenantID, ProposalID: p.ID, Manifest: agreed, Impact: impact, Votes: summary}); err == nil {
			steps = append(steps, scoredSteps(sc)...)
		} else {
			s.deps.Logger.WarnContext(ctx, "score after agreement; retried by the engine", "proposal_id", p.ID, "error", err)
		}
	}
	return s.moveChain(ctx, p, nil, steps...)
}

// reclassifyAgreed classifies the agreed manifest (the submitted one when the
// regions did not change it) against the world as it is now.
func (s *Service) reclassifyAgreed(ctx context.Context, p *store.Proposal, d *coordinatorv1.Proposal, agreed *typesv1.Manifest) (*reclassification, error) {
	m := agreed
	if m == nil {
		var err error
		if m, err = submittedManifest(p); err != nil {
			return nil, err
		}
	}
	pre, err := s.deps.World.Read(ctx, p.TenantID, m.GetTarget(), m.GetRegions())
	return s.reclassify(ctx, p, d, m, pre, err, stageAgreement), nil
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

// scoreAgreed scores an AGREED proposal whose score could not be recorded with its
// agreement, and moves it to SCORED (and PENDING_APPROVAL when the policy asks).
func (s *Service) scoreAgreed(ctx context.Context, p *store.Proposal) (*store.Proposal, error) {
	if s.deps.Scorer == nil {
		return nil, nil
	}
	d, err := decision(p)
	if err != nil {
		return nil, err
	}
	_, m, err := change(p, d)
	if err != nil {
		return nil, err
	}
	sc, err := s.scoreInput(ctx, p, ScoreInput{TenantID: p.TenantID, ProposalID: p.ID, Manifest: m, Impact: p.Impact, Votes: d.GetVotes()})
	if err != nil {
		return nil, err
	}
	return s.moveChain(ctx, p, nil, scoredSteps(sc)...)
}

func (s *Service) scoreInput(ctx context.Context, p *store.Proposal, in ScoreInput) (*scorerv1.ScoreResponse, error) {
	if s.deps.Scorer == nil {
		return nil, errors.New("coordinator: no scorer")
	}
	history, err := s.historyCounts(ctx, p, in.Manifest)
	if err != nil {
		return nil, err
	}
	in.History = history
	sc, err := s.deps.Scorer.Score(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("coordinator: score: %w", err)
	}
	return sc, nil
}

// scoredSteps record a score, then ask for approval when the policy (as recorded by
// the steps before) requires it.
func scoredSteps(sc *scorerv1.ScoreResponse) []moveStep {
	return []moveStep{
		{to: stScored, edit: func(d *coordinatorv1.Proposal) {
			d.Score = &coordinatorv1.Score{
				Confidence: sc.GetConfidence(), RiskScore: sc.GetRisk().GetScore(), RiskLevel: sc.GetRisk().GetLevel(),
				CostAmount: sc.GetCostEstimate().GetAmount(), CostCurrency: sc.GetCostEstimate().GetCurrency(),
				Explanation: sc.GetExplanation(),
			}
		}},
		{to: stPendingApproval, when: func(d *coordinatorv1.Proposal) bool { return d.GetPolicy().GetApprovalRequired() }},
	}
}

// historyCounts counts the outcomes of the tenant's earlier decisions like m (the
// scorer's history evidence) from the coordinator's own table: successes are ENACTED
// proposals, failures ROLLED_BACK and DRY_RUN_FAILED ones, at action+target scope and
// at action scope, the newest store.MaxListLimit of each; p itself never counts.
func (s *Service) historyCounts(ctx context.Context, p *store.Proposal, m *typesv1.Manifest) (*scorerv1.HistoryCounts, error) {
	out := &scorerv1.HistoryCounts{}
	if m.GetAction() == "" {
		return out, nil
	}
	finished := []string{stEnacted, stRolledBack, stDryRunFailed}
	tally := func(target string) (ok, bad int32, err error) {
		counts, err := s.deps.Store.Proposals().History(ctx, p.TenantID, m.GetAction(), target, finished, store.MaxListLimit)
		if err != nil {
			return 0, 0, fmt.Errorf("coordinator: history: %w", err)
		}
		if counts[p.Status] > 0 && (target == "" || target == p.Target) && m.GetAction() == p.Action {
			counts[p.Status]-- // a proposal scored after it finished is in its own history
		}
		return int32(counts[stEnacted]), int32(counts[stRolledBack] + counts[stDryRunFailed]), nil
	}
	var err error
	if m.GetTarget() != "" {
		if out.ActionTargetSuccesses, out.ActionTargetFailures, err = tally(m.GetTarget()); err != nil {
			return nil, err
		}
	}
	if out.ActionSuccesses, out.ActionFailures, err = tally(""); err != nil {
		return nil, err
	}
	return out, nil
}

// change is the executor's view of the manifest to enact: the agreed one when the
// regions countered, else the submitted one.
func change(p *store.Proposal, d *coordinatorv1.Proposal) (world.Change, *typesv1.Manifest, error) {
	m := d.GetAgreedManifest()
	if m == nil {
		var err error
		if m, err = submittedManifest(p); err != nil {
			return world.Change{}, nil, err
		}
	}
	return manifestpkg.Change(p.TenantID, m), m, nil
}

// missingForEnactment lists what P3 still requires before a real enactment.
func missingForEnactment(p *store.Proposal, d *coordinatorv1.Proposal) []string {
	var missing []string
	pol := d.GetPolicy()
	if pol.GetApprovalRequired() || p.Impact == policy.ImpactHigh {
		need := max(int(pol.GetApprovalsRequired()), 1)
		if got := len(distinct(d.GetApprovers())); got < need {
			missing = append(missing, fmt.Sprintf("an approver recorded (%d of %d; P3)", got, need))
		}
		dr := d.GetDryRunResult()
		if !dr.GetPassed() || dr.GetPreStateSha256() != p.PreStateSHA256 {
			missing = append(missing, "a passed dry run (POST /proposals/{id}/enact with {\"dry_run\":true})")
		}
	}
	return missing
}

// distinct is the set of names in names (an approver counts once, however often
// recorded).
func distinct(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}

// notReady explains why a proposal in status st cannot be enacted at all.
func notReady(p *store.Proposal, d *coordinatorv1.Proposal) error {
	switch p.Status {
	case stSubmitted, stNegotiating, stAgreed:
		return status.Errorf(codes.FailedPrecondition, "proposal %s is %s: the regions have not agreed yet (poll GET /proposals/%s)", p.ID, p.Status, p.ID)
	case stRejected, stExpired, stDenied:
		return status.Errorf(codes.FailedPrecondition, "proposal %s was %s and cannot be enacted: %s", p.ID, p.Status, d.GetReason())
	case stEnacted, stRolledBack:
		return status.Errorf(codes.FailedPrecondition, "proposal %s is already %s", p.ID, p.Status)
	}
	return nil
}

// dryRun plans the change against the current state and records the result; status
// moves to DRY_RUN_PASSED/FAILED where the state machine allows it (a proposal waiting
// for approval keeps waiting, with the result recorded for the approvers).
func (s *Service) dryRun(ctx context.Context, p *store.Proposal) (*store.Proposal, world.Snapshot, error) {
	res, pre, err := s.planDryRun(ctx, p)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	to, event, edit := dryRunMove(p, res)
	next, err := s.moveAudited(ctx, p, to, event, edit, columns{})
	return next, pre, err
}

// planDryRun plans the change against the current state, changing nothing: the
// result a dry run records, and the pre-state it read.
func (s *Service) planDryRun(ctx context.Context, p *store.Proposal) (*coordinatorv1.DryRunResult, world.Snapshot, error) {
	d, err := decision(p)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	c, _, err := change(p, d)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	pre, err := s.deps.World.Read(ctx, c.TenantID, c.Target, c.Regions)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	res := &coordinatorv1.DryRunResult{Passed: true, PreStateSha256: pre.SHA256, RanAt: timestamppb.New(s.deps.Now())}
	plan, err := s.deps.World.Plan(ctx, c)
	switch {
	case errors.Is(err, world.ErrRejected):
		res.Passed, res.Detail = false, err.Error()
	case err != nil:
		return nil, world.Snapshot{}, err
	default:
		res.PlannedPostStateSha256 = plan.SHA256
	}
	if pre.SHA256 != p.PreStateSHA256 {
		res.Passed = false
		res.Detail = fmt.Sprintf("the state of %s changed since the proposal was submitted (pre-state %s, now %s); submit a new proposal", c.Target, short(p.PreStateSHA256), short(pre.SHA256))
	}
	return res, pre, nil
}

// dryRunMove is how a dry run's result is recorded: the status it moves p to
// (DRY_RUN_PASSED or _FAILED where the state machine allows it; a proposal waiting
// for approval keeps waiting, with the result recorded for the approvers), its audit
// event, and the edit of the decision record.
func dryRunMove(p *store.Proposal, res *coordinatorv1.DryRunResult) (to, event string, edit func(d *coordinatorv1.Proposal)) {
	to = stDryRunPassed
	if !res.GetPassed() {
		to = stDryRunFailed
	}
	event = transitionEvent(to) // proposal.dry_run_passed or proposal.dry_run_failed
	if p.Status == stPendingApproval {
		to = stPendingApproval
	}
	return to, event, func(d *coordinatorv1.Proposal) {
		d.DryRunResult = res
		if !res.GetPassed() {
			d.Reason = res.GetDetail()
		}
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// enact applies the change: the world must still be in the submitted pre-state and
// the dry run must pass. The passed dry run, the move to ENACTED and the post-state
// snapshot are then recorded in one transaction (a failed dry run is recorded alone,
// and refused).
func (s *Service) enact(ctx context.Context, p *store.Proposal) (*store.Proposal, world.Snapshot, world.Snapshot, error) {
	res, pre, err := s.planDryRun(ctx, p)
	if err != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, err
	}
	if !res.GetPassed() {
		to, event, edit := dryRunMove(p, res)
		if _, err := s.moveAudited(ctx, p, to, event, edit, columns{}); err != nil {
			return nil, world.Snapshot{}, world.Snapshot{}, err
		}
		return nil, world.Snapshot{}, world.Snapshot{}, status.Errorf(codes.FailedPrecondition, "dry run failed: %s", res.GetDetail())
	}
	d, err := decision(p)
	if err != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, err
	}
	c, m, err := change(p, d)
	if err != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, err
	}
	// The exact change to apply is classified again: nothing is enacted at an impact
	// above what was classified and approved (a policy changed since, a proposal
	// agreed before agreements were classified).
	if re := s.reclassify(ctx, p, d, m, pre, nil, stageEnactment); re != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, s.holdForApproval(ctx, p, re)
	}
	// A world that lives in the fabric's store (the simulated one) is changed in the
	// transaction that records the enactment: a crash can never leave the change
	// applied without its record. Any other (a tenant's webhook) is changed first and
	// put back when the record cannot be written.
	if ta, ok := s.deps.World.(world.TxApplier); ok {
		var applied bool
		next, post, err := s.recordEnactment(ctx, p, res, func(tx store.Store) (world.Snapshot, error) {
			post, ok, err := ta.ApplyIn(ctx, tx, c, pre)
			applied = ok
			if errors.Is(err, store.ErrConflict) {
				return world.Snapshot{}, status.Errorf(codes.Aborted, "the state of %s changed during enactment; nothing was applied, retry", c.Target)
			}
			return post, err
		})
		if applied || err != nil && !errors.Is(err, errNotInTx) {
			if err != nil {
				return nil, world.Snapshot{}, world.Snapshot{}, err
			}
			return next, pre, post, nil
		}
	}
	post, err := s.deps.World.Apply(ctx, c, pre)
	if errors.Is(err, store.ErrConflict) {
		return nil, world.Snapshot{}, world.Snapshot{}, status.Errorf(codes.Aborted, "the state of %s changed during enactment; nothing was applied, retry", c.Target)
	}
	if err != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, err
	}
	next, _, err := s.recordEnactment(ctx, p, res, func(store.Store) (world.Snapshot, error) { return post, nil })
	if err != nil {
		// The world changed but the enactment could not be recorded (the proposal
		// moved on concurrently, or the store failed): put the world back, so no
		// change exists without its record.
		return nil, world.Snapshot{}, world.Snapshot{}, s.undoApply(ctx, c, pre, err)
	}
	return next, pre, post, nil
}

// holdForApproval records an enactment-time reclassification and says why the
// enactment is refused: the proposal moves to PENDING_APPROVAL with its new policy
// decision, or, when the policy refuses the change itself, stays where it is with
// the refusal audited.
func (s *Service) holdForApproval(ctx context.Context, p *store.Proposal, re *reclassification) error {
	if re.refused != nil {
		entries, err := s.outboxEntries(ctx, p.TenantID, p.ID, re.audit(p))
		if err != nil {
			return err
		}
		var staged []*store.OutboxEntry
		if err := s.deps.Store.InTx(ctx, func(tx store.Store) error {
			var err error
			staged, err = stageIn(ctx, tx, entries)
			return err
		}); err != nil {
			return storeError(err)
		}
		s.deliver(ctx, staged)
		return status.Errorf(codes.FailedPrecondition, "enactment of proposal %s refused: the policy refuses the change to enact: %s", p.ID, status.Convert(re.refused).Message())
	}
	if _, err := s.moveAudited(ctx, p, stPendingApproval, transitionEvent(stPendingApproval), re.edit, columns{impact: re.to}, re.audit(p)); err != nil {
		return err
	}
	return status.Errorf(codes.FailedPrecondition, "enactment of proposal %s refused: %s; it now waits for approval (P3)", p.ID, re.record.GetReasons()[0])
}

// undoApply restores the pre-state after an applied change could not be recorded, and
// says what happened. cause is the recording's error.
func (s *Service) undoApply(ctx context.Context, c world.Change, pre world.Snapshot, cause error) error {
	bg := context.WithoutCancel(ctx)
	if _, rerr := s.deps.World.Restore(bg, c, pre); rerr != nil {
		s.deps.Logger.ErrorContext(ctx, "enactment applied but neither recorded nor undone; the world differs from the record",
			"tenant_id", c.TenantID, "target", c.Target, "record_error", cause, "restore_error", rerr)
		return status.Errorf(codes.Internal, "the change to %s was applied but could not be recorded, and undoing it failed: restore the pre-state %s", c.Target, short(pre.SHA256))
	}
	if st, ok := status.FromError(cause); ok && st.Code() == codes.Aborted {
		return status.Errorf(codes.Aborted, "proposal changed concurrently during enactment; the change was undone, retry")
	}
	return cause
}

// recordEnactment stores the passed dry run res, the move to ENACTED and the post
// snapshot, with their audit events, in one transaction.
func (s *Service) recordEnactment(ctx context.Context, p *store.Proposal, res *coordinatorv1.DryRunResult, apply func(tx store.Store) (world.Snapshot, error)) (*store.Proposal, world.Snapshot, error) {
	to, event, edit := dryRunMove(p, res)
	planned := res.GetPlannedPostStateSha256()
	var post world.Snapshot
	next, err := s.moveChain(ctx, p, func(tx store.Store) error {
		var err error
		if post, err = apply(tx); err != nil {
			return err
		}
		if post.JSON == nil {
			return errNotInTx
		}
		if post.SHA256 != planned {
			return status.Errorf(codes.Aborted, "the change would produce state %s, not the planned %s; nothing was applied, retry", short(post.SHA256), short(planned))
		}
		return tx.Snapshots().Put(ctx, &store.Snapshot{
			ID: newID(s.deps.Now()), ProposalID: p.ID, TenantID: p.TenantID, Kind: "post",
			SHA256: post.SHA256, State: post.JSON, CreatedAt: s.deps.Now().UTC(),
		})
	},
		moveStep{to: to, event: event, edit: edit},
		moveStep{to: stEnacted, cols: columns{post: planned}, after: []auditEvent{snapshotAudit(p, "post", planned)}},
	)
	return next, post, err
}

// errNotInTx: the world cannot be changed in the store's transaction (a webhook).
var errNotInTx = errors.New("coordinator: the world is not in the store")

// rollback restores the pre-state snapshot exactly and checks the hash (P7).
func (s *Service) rollback(ctx context.Context, p *store.Proposal) (*store.Proposal, world.Snapshot, error) {
	if p.Status != stEnacted {
		return nil, world.Snapshot{}, status.Errorf(codes.FailedPrecondition, "proposal %s is %s; only an ENACTED proposal can be rolled back", p.ID, p.Status)
	}
	snaps, err := s.deps.Store.Snapshots().List(ctx, p.TenantID, p.ID)
	if err != nil {
		return nil, world.Snapshot{}, storeError(err)
	}
	var pre world.Snapshot
	for _, sn := range snaps {
		if sn.Kind == "pre" {
			pre = world.Snapshot{JSON: sn.State, SHA256: sn.SHA256}
		}
	}
	if pre.JSON == nil {
		return nil, world.Snapshot{}, status.Errorf(codes.FailedPrecondition, "proposal %s has no pre-state snapshot to restore", p.ID)
	}
	d, err := decision(p)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	c, _, err := change(p, d)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	restored, err := s.deps.World.Restore(ctx, c, pre)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	if restored.SHA256 != p.PreStateSHA256 {
		return nil, world.Snapshot{}, status.Errorf(codes.Aborted, "restored state hashes to %s, not the pre-state %s", short(restored.SHA256), short(p.PreStateSHA256))
	}
	next, err := s.move(ctx, p, stRolledBack, func(d *coordinatorv1.Proposal) { d.Reason = "rolled back to the pre-state snapshot" }, "")
	return next, restored, err
}

// snapshotProto renders a snapshot for a response.
func snapshotProto(kind string, s world.Snapshot, at time.Time) (*typesv1.Snapshot, error) {
	out := &typesv1.Snapshot{Kind: kind, Sha256: s.SHA256, CreatedAt: timestamppb.New(at), State: &structpb.Struct{}}
	if err := protojson.Unmarshal(s.JSON, out.State); err != nil {
		return nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	return out, nil
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
