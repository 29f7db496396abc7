// dryrun.go holds the whole-chain dry run: each step rehearsed through its owner's
// contract (nothing is written anywhere but the run's own row), the P1..P7 checks and
// the recommendation.

package canary

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/quorum"
)

// Run states and kinds.
const (
	stateRunning = "RUNNING"
	statePassed  = "PASSED"
	stateFailed  = "FAILED"
	kindDryRun   = "dry_run"
)

// Step results.
const (
	resultPassed        = "PASSED"
	resultFailed        = "FAILED"
	resultNeedsApproval = "NEEDS_APPROVAL"
	resultSkipped       = "SKIPPED"
)

// Recommendations.
const (
	recommendProceed       = "PROCEED"
	recommendNeedsApproval = "NEEDS_APPROVAL"
	recommendRefused       = "REFUSED"
)

// Check results.
const (
	checkPassed = "PASSED"
	checkFailed = "FAILED"
	checkNA     = "NOT_APPLICABLE"
)

// chain is what one dry run learned, step by step.
type chain struct {
	proposal    *coordinatorv1.Proposal
	policy      *coordinatorv1.RehearseEnactmentResponse // the submitted manifest classified
	negotiation *negotiatorv1.RehearseNegotiationResponse
	score       *scorerv1.ScoreResponse
	enactment   *coordinatorv1.RehearseEnactmentResponse // the agreed manifest: approvals, dry run, audit
	negotiated  time.Duration
	timeout     time.Duration
	refusal     string // why the chain would be refused ("" when it would not)
}

// dryRun rehearses the chain for tenant's proposal and stores the run.
func (s *Service) dryRun(ctx context.Context, tenant, proposalID string) (*canaryv1.CanaryRun, error) {
	start := s.deps.Now().UTC()
	run := &canaryv1.CanaryRun{
		Id: ulid.MustNew(ulid.Timestamp(start), ulid.DefaultEntropy()).String(), ProposalId: proposalID,
		TenantId: tenant, State: stateRunning, DryRun: true, StartedAt: timestamppb.New(start),
	}
	if p := auth.FromContext(ctx); p != nil {
		run.CreatedBy = p.Actor()
	}
	peer := s.deps.As(ctx, tenant)
	got, err := s.deps.Coordinator.GetProposal(peer, &coordinatorv1.GetProposalRequest{Id: proposalID})
	if err != nil {
		return nil, peerError("read the proposal", err)
	}
	c := &chain{proposal: got.GetProposal()}
	if c.proposal.GetTenantId() != tenant {
		return nil, status.Errorf(codes.NotFound, "proposal %s not found", proposalID)
	}
	steps := []func(context.Context, *chain) (*canaryv1.CanaryStep, error){
		s.stepPolicy, s.stepNegotiate, s.stepScore, s.stepApproval, s.stepEnact, s.stepAudit,
	}
	for _, step := range steps {
		began := s.deps.Now()
		st, err := step(peer, c)
		if err != nil {
			return nil, err
		}
		st.StartedAt, st.DurationMs = timestamppb.New(began.UTC()), s.deps.Now().Sub(began).Milliseconds()
		run.Steps = append(run.Steps, st)
		s.metrics.steps.WithLabelValues(st.GetName(), st.GetResult()).Inc()
	}
	run.Scorecard = scorecard(c)
	run.State = statePassed
	if run.GetScorecard().GetRecommendation() == recommendRefused {
		run.State = stateFailed
	}
	end := s.deps.Now().UTC()
	run.FinishedAt = timestamppb.New(end)
	if err := s.save(ctx, run); err != nil {
		return nil, err
	}
	s.metrics.runs.WithLabelValues(kindDryRun, run.GetState()).Inc()
	s.metrics.duration.WithLabelValues(kindDryRun).Observe(end.Sub(start).Seconds())
	s.deps.Logger.InfoContext(ctx, "dry run finished", "run_id", run.GetId(), "tenant_id", tenant, "proposal_id", proposalID,
		"state", run.GetState(), "recommendation", run.GetScorecard().GetRecommendation())
	return run, nil
}

// peerError is what a caller is told when a peer refused or failed: NOT_FOUND passes
// through (an unknown proposal, or another tenant's); anything else is UNAVAILABLE,
// and nothing was stored.
func peerError(what string, err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.NotFound, codes.InvalidArgument:
		return status.Error(st.Code(), st.Message())
	case codes.Canceled, codes.DeadlineExceeded:
		return status.Errorf(st.Code(), "%s: %s", what, st.Message())
	}
	return status.Errorf(codes.Unavailable, "%s: %s; nothing was stored, retry", what, st.Message())
}

// submitted is the manifest the proposal was submitted with.
func (c *chain) submitted() *typesv1.Manifest { return c.proposal.GetManifest() }

// agreed is the manifest the rehearsed negotiation agreed on (nil unless AGREED).
func (c *chain) agreed() *typesv1.Manifest {
	if c.negotiation.GetState() != negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED {
		return nil
	}
	return c.negotiation.GetFinalManifest()
}

func (c *chain) refuse(why string) {
	if c.refusal == "" {
		c.refusal = why
	}
}

// stepPolicy classifies the submitted manifest with the tenant's policy on the current
// state (coordinator RehearseEnactment).
func (s *Service) stepPolicy(ctx context.Context, c *chain) (*canaryv1.CanaryStep, error) {
	r, err := s.deps.Coordinator.RehearseEnactment(ctx, &coordinatorv1.RehearseEnactmentRequest{Id: c.proposal.GetId(), Manifest: c.submitted()})
	if err != nil {
		return nil, peerError("rehearse the policy", err)
	}
	c.policy = r
	st := &canaryv1.CanaryStep{Name: "policy", Inputs: map[string]string{
		"manifest_sha256": r.GetManifestSha256(), "declared_impact": c.submitted().GetImpact(),
	}}
	if r.GetPolicyRefusal() != "" {
		st.Result, st.Detail = resultFailed, "the policy refuses the change: "+r.GetPolicyRefusal()
		c.refuse(st.GetDetail())
		return st, nil
	}
	p := r.GetPolicy()
	st.Result = resultPassed
	st.Detail = fmt.Sprintf("%s impact, quorum %s, approval %s", p.GetComputedImpact(), p.GetQuorum(), requiredWord(p.GetApprovalRequired()))
	for k, v := range map[string]string{
		"computed_impact": p.GetComputedImpact(), "quorum": p.GetQuorum(),
		"approval_required": strconv.FormatBool(p.GetApprovalRequired()), "approvals_required": strconv.Itoa(int(p.GetApprovalsRequired())),
		"cost_delta_monthly":  strconv.FormatFloat(p.GetCostDeltaMonthly(), 'f', 2, 64) + " " + p.GetCurrency(),
		"decision_timeout_ms": strconv.FormatInt(p.GetDecisionTimeoutMs(), 10), "policy_digest": p.GetPolicyDigest(),
		"reasons": strings.Join(p.GetReasons(), "; "),
	} {
		st.Inputs[k] = v
	}
	return st, nil
}

func requiredWord(b bool) string {
	if b {
		return "required"
	}
	return "not required"
}

// stepNegotiate rehearses the negotiation with the regions' agents (negotiator
// RehearseNegotiation: nothing stored).
func (s *Service) stepNegotiate(ctx context.Context, c *chain) (*canaryv1.CanaryStep, error) {
	st := &canaryv1.CanaryStep{Name: "negotiate", Inputs: map[string]string{}}
	if c.refusal != "" {
		st.Result, st.Detail = resultSkipped, "not reached: "+c.refusal
		return st, nil
	}
	c.timeout = time.Duration(c.policy.GetPolicy().GetDecisionTimeoutMs()) * time.Millisecond
	req := &negotiatorv1.RehearseNegotiationRequest{ProposalId: c.proposal.GetId(), Manifest: c.submitted(),
		QuorumRule: quorum.RuleOrUnspecified(c.policy.GetPolicy().GetQuorum()), TimeoutMs: c.timeout.Milliseconds()}
	began := s.deps.Now()
	r, err := s.deps.Negotiator.RehearseNegotiation(ctx, req)
	c.negotiated = s.deps.Now().Sub(began)
	if code := status.Code(err); code == codes.FailedPrecondition || code == codes.InvalidArgument {
		// The negotiator refuses the manifest itself (a region without an agent).
		st.Result, st.Detail = resultFailed, "the negotiator would refuse the manifest: "+status.Convert(err).Message()
		c.refuse(st.GetDetail())
		return st, nil
	}
	if err != nil {
		return nil, peerError("rehearse the negotiation", err)
	}
	c.negotiation = r
	st.Inputs = map[string]string{
		"quorum_rule": quorum.RuleName(r.GetQuorumRule()), "rounds": strconv.Itoa(int(r.GetRounds())),
		"accept": strconv.Itoa(int(r.GetAccept())), "reject": strconv.Itoa(int(r.GetReject())),
		"counter": strconv.Itoa(int(r.GetCounter())), "abstain": strconv.Itoa(int(r.GetAbstain())),
		"votes": strconv.Itoa(len(r.GetVotes())), "outcome": stateName(r.GetState()),
		"timeout_ms": strconv.FormatInt(c.timeout.Milliseconds(), 10),
	}
	st.Detail = fmt.Sprintf("%s after %d round(s): %s", stateName(r.GetState()), r.GetRounds(), r.GetReason())
	if c.agreed() == nil {
		st.Result = resultFailed
		c.refuse("the regions would not agree: " + r.GetReason())
		return st, nil
	}
	st.Result = resultPassed
	if !proto.Equal(c.agreed(), c.submitted()) {
		st.Detail += " (the agreed manifest differs from the submitted one: counter-offers merged)"
	}
	return st, nil
}

func stateName(s negotiatorv1.NegotiationState) string {
	return strings.TrimPrefix(s.String(), "NEGOTIATION_STATE_")
}

// stepScore scores the agreed manifest (scorer Score: owns no table) with the rehearsed
// votes and the tenant's history, then rehearses the rest of the chain on it.
func (s *Service) stepScore(ctx context.Context, c *chain) (*canaryv1.CanaryStep, error) {
	st := &canaryv1.CanaryStep{Name: "score", Inputs: map[string]string{}}
	if c.refusal != "" {
		st.Result, st.Detail = resultSkipped, "not reached: "+c.refusal
		return st, nil
	}
	// The rest of the chain is rehearsed on the agreed manifest: its classification
	// (impact for the scorer), approvals, dry run and audit entries.
	r, err := s.deps.Coordinator.RehearseEnactment(ctx, &coordinatorv1.RehearseEnactmentRequest{Id: c.proposal.GetId(), Manifest: c.agreed()})
	if err != nil {
		return nil, peerError("rehearse the enactment", err)
	}
	c.enactment = r
	impact := r.GetImpact()
	if pi := r.GetPolicy().GetComputedImpact(); rank(pi) > rank(impact) {
		impact = pi
	}
	req := &scorerv1.ScoreRequest{ProposalId: c.proposal.GetId(), TenantId: c.proposal.GetTenantId(), Manifest: c.agreed(),
		Impact: impact, History: r.GetHistory()}
	n := c.negotiation
	if total := n.GetAccept() + n.GetReject() + n.GetCounter(); total > 0 {
		req.Votes = &scorerv1.VoteAgreement{Accepted: float64(n.GetAccept()), Total: float64(total)}
	}
	sc, err := s.deps.Scorer.Score(ctx, req)
	if err != nil {
		return nil, peerError("score", err)
	}
	c.score = sc
	st.Result = resultPassed
	st.Detail = sc.GetExplanation()
	st.Inputs = map[string]string{
		"impact": impact, "confidence": strconv.FormatFloat(sc.GetConfidence(), 'f', 3, 64),
		"risk_score": strconv.FormatFloat(sc.GetRisk().GetScore(), 'f', 3, 64), "risk_level": sc.GetRisk().GetLevel(),
		"cost":              strconv.FormatFloat(sc.GetCostEstimate().GetAmount(), 'f', 2, 64) + " " + sc.GetCostEstimate().GetCurrency(),
		"history_successes": strconv.Itoa(int(r.GetHistory().GetActionTargetSuccesses() + r.GetHistory().GetActionSuccesses())),
		"history_failures":  strconv.Itoa(int(r.GetHistory().GetActionTargetFailures() + r.GetHistory().GetActionFailures())),
	}
	if r.GetPolicyRefusal() != "" {
		c.refuse("the policy refuses the agreed change: " + r.GetPolicyRefusal())
	}
	return st, nil
}

func rank(impact string) int {
	switch impact {
	case "low":
		return 1
	case "medium":
		return 2
	case "high":
		return 3
	case "critical":
		return 4
	}
	return 0
}

// stepApproval says which approvals the change would need and from whom. Nobody is
// notified.
func (s *Service) stepApproval(_ context.Context, c *chain) (*canaryv1.CanaryStep, error) {
	st := &canaryv1.CanaryStep{Name: "approval", Inputs: map[string]string{}}
	if c.enactment == nil {
		st.Result, st.Detail = resultSkipped, "not reached: "+c.refusal
		return st, nil
	}
	a := c.enactment.GetApproval()
	st.Inputs = map[string]string{"required": strconv.FormatBool(a.GetRequired()),
		"approvals_required": strconv.Itoa(int(a.GetApprovalsRequired())), "standing": a.GetStanding()}
	switch {
	case !a.GetRequired():
		st.Result, st.Detail = resultPassed, "no human approval required"
	case a.GetStanding() == "APPROVED":
		st.Result, st.Detail = resultPassed, "approved: "+strings.Join(a.GetExplanation(), "; ")
	case a.GetStanding() == "DENIED":
		st.Result, st.Detail = resultFailed, "denied: "+strings.Join(a.GetExplanation(), "; ")
		c.refuse(st.GetDetail())
	default:
		st.Result = resultNeedsApproval
		st.Detail = fmt.Sprintf("%d approval(s) needed (no notification sent): %s", a.GetApprovalsRequired(), strings.Join(a.GetExplanation(), "; "))
	}
	return st, nil
}

// stepEnact reports the dry-run enactment on a copy of the world.
func (s *Service) stepEnact(_ context.Context, c *chain) (*canaryv1.CanaryStep, error) {
	st := &canaryv1.CanaryStep{Name: "enact", Inputs: map[string]string{}}
	if c.enactment == nil {
		st.Result, st.Detail = resultSkipped, "not reached: "+c.refusal
		return st, nil
	}
	dr := c.enactment.GetDryRun()
	st.Inputs = map[string]string{
		"recorded_pre_state_sha256": c.enactment.GetRecordedPreStateSha256(), "pre_state_sha256": dr.GetPreStateSha256(),
		"predicted_post_state_sha256": dr.GetPlannedPostStateSha256(), "changes": strconv.Itoa(len(c.enactment.GetDiff())),
		"enactment_blocked_now": c.enactment.GetEnactmentBlocked(),
	}
	if why := terminal(c.proposal.GetStatus()); why != "" {
		st.Result, st.Detail = resultFailed, why
		c.refuse(why)
		return st, nil
	}
	if !dr.GetPassed() {
		st.Result, st.Detail = resultFailed, "the dry run would fail: "+dr.GetDetail()
		c.refuse(st.GetDetail())
		return st, nil
	}
	st.Result = resultPassed
	st.Detail = fmt.Sprintf("the dry run passes on a copy of the world: %d value(s) change, state %s → %s",
		len(c.enactment.GetDiff()), short(dr.GetPreStateSha256()), short(dr.GetPlannedPostStateSha256()))
	return st, nil
}

// terminal says why a proposal in status st can no longer be enacted ("" when it can).
func terminal(st coordinatorv1.ProposalStatus) string {
	switch st {
	case coordinatorv1.ProposalStatus_PROPOSAL_STATUS_REJECTED, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_EXPIRED,
		coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DENIED, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED,
		coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ROLLED_BACK:
		return fmt.Sprintf("the proposal is %s and can no longer be enacted", strings.TrimPrefix(st.String(), "PROPOSAL_STATUS_"))
	}
	return ""
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// stepAudit lists the audit entries the chain would write.
func (s *Service) stepAudit(_ context.Context, c *chain) (*canaryv1.CanaryStep, error) {
	st := &canaryv1.CanaryStep{Name: "audit", Inputs: map[string]string{}}
	entries := auditEntries(c)
	st.Inputs["entries"] = strconv.Itoa(len(entries))
	st.Result = resultPassed
	if len(entries) == 0 {
		st.Detail = "no audit entry: the chain ends before any transition"
		return st, nil
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.GetEvent()
	}
	st.Detail = fmt.Sprintf("%d audit entries through the decision auditor's contract: %s", len(entries), strings.Join(names, ", "))
	return st, nil
}

// auditEntries are the audit entries the whole chain would write, in order.
func auditEntries(c *chain) []*canaryv1.AuditPreview {
	var out []*canaryv1.AuditPreview
	if c.enactment != nil {
		for _, e := range c.enactment.GetAuditEntries() {
			out = append(out, &canaryv1.AuditPreview{Service: fabric.Coordinator, Event: e.GetEvent(), Key: e.GetKey()})
		}
		return out
	}
	if c.negotiation != nil && c.agreed() == nil {
		// The negotiation would end the proposal without agreement.
		event := "proposal." + strings.ToLower(stateName(c.negotiation.GetState()))
		out = append(out, &canaryv1.AuditPreview{Service: fabric.Coordinator, Event: event})
	}
	return out
}

// scorecard sums the chain up: the checks, the plan, the audit entries and the
// recommendation.
func scorecard(c *chain) *canaryv1.Scorecard {
	sc := &canaryv1.Scorecard{
		ProposalStatus: strings.TrimPrefix(c.proposal.GetStatus().String(), "PROPOSAL_STATUS_"),
		AuditEntries:   auditEntries(c), Checks: checks(c),
	}
	if e := c.enactment; e != nil {
		sc.PreStateSha256 = e.GetDryRun().GetPreStateSha256()
		sc.PredictedPostStateSha256 = e.GetDryRun().GetPlannedPostStateSha256()
		sc.ManifestSha256 = e.GetManifestSha256()
		for _, l := range e.GetDiff() {
			sc.Diff = append(sc.Diff, &canaryv1.StateChange{Path: l.GetPath(), Before: l.GetBefore(), After: l.GetAfter()})
		}
		if a := e.GetApproval(); a.GetRequired() && a.GetStanding() != "APPROVED" {
			sc.ApprovalsNeeded = a.GetExplanation()
		}
	}
	switch {
	case c.refusal != "":
		sc.Recommendation, sc.RecommendationDetail = recommendRefused, "would be refused because "+c.refusal
	case len(sc.GetApprovalsNeeded()) > 0:
		sc.Recommendation = recommendNeedsApproval
		sc.RecommendationDetail = "needs approval from: " + strings.Join(sc.GetApprovalsNeeded(), "; ")
	default:
		sc.Recommendation, sc.RecommendationDetail = recommendProceed, "proceed: every step would pass"
	}
	return sc
}

// checks are the fabric's properties as the rehearsed chain meets them.
func checks(c *chain) []*canaryv1.PropertyCheck {
	p := c.proposal
	check := func(id, name, result, detail string) *canaryv1.PropertyCheck {
		return &canaryv1.PropertyCheck{Id: id, Name: name, Result: result, Detail: detail}
	}
	var out []*canaryv1.PropertyCheck

	// P1: personal data only with a verified consent (checked at submission).
	if cons := p.GetManifest().GetConsent(); cons != nil {
		out = append(out, check("P1", "personal data only with consent", checkPassed,
			"the manifest carries a signed consent, verified when the proposal was submitted"))
	} else {
		out = append(out, check("P1", "personal data only with consent", checkNA,
			"no consent carried: the coordinator found no personal data in the manifest at submission"))
	}

	// P2: signatures.
	sig := "the manifest signature was verified at submission"
	if p.GetManifestSignature() == nil {
		sig = "the manifest is unsigned (accepted in simulation only)"
	}
	switch {
	case c.negotiation == nil:
		out = append(out, check("P2", "signed manifests, votes and bundles", checkNA, sig+"; no negotiation was rehearsed"))
	case strings.Contains(c.enactment.GetEnactmentBlocked(), "consensus bundle does not verify"):
		out = append(out, check("P2", "signed manifests, votes and bundles", checkFailed, "the proposal's consensus bundle does not verify"))
	default:
		out = append(out, check("P2", "signed manifests, votes and bundles", checkPassed,
			fmt.Sprintf("%s; %d rehearsed vote(s), each signed by its region's key and checked against it", sig, len(c.negotiation.GetVotes()))))
	}

	// P3: high impact needs an approval and a passed dry run before enactment.
	switch e := c.enactment; {
	case e == nil:
		out = append(out, check("P3", "approval and dry run before high-impact enactment", checkNA, "the chain does not reach enactment"))
	case !e.GetDryRun().GetPassed():
		out = append(out, check("P3", "approval and dry run before high-impact enactment", checkFailed, "the dry run fails: "+e.GetDryRun().GetDetail()))
	case e.GetApproval().GetRequired():
		out = append(out, check("P3", "approval and dry run before high-impact enactment", checkPassed,
			fmt.Sprintf("approval required (%d, standing %s) and the dry run passes: enactment waits for both", e.GetApproval().GetApprovalsRequired(), e.GetApproval().GetStanding())))
	default:
		out = append(out, check("P3", "approval and dry run before high-impact enactment", checkPassed, "no approval required; the dry run passes"))
	}

	// P4: every transition audited.
	if n := len(auditEntries(c)); n > 0 {
		out = append(out, check("P4", "every transition audited", checkPassed, fmt.Sprintf("%d audit entries would be written", n)))
	} else {
		out = append(out, check("P4", "every transition audited", checkNA, "no transition would happen"))
	}

	// P5: tenant isolation.
	if mt := p.GetManifest().GetTenantId(); mt != "" && mt != p.GetTenantId() {
		out = append(out, check("P5", "tenant isolation", checkFailed, fmt.Sprintf("the manifest names tenant %q, not the proposal's", mt)))
	} else {
		out = append(out, check("P5", "tenant isolation", checkPassed, "every call was made for the caller's tenant "+p.GetTenantId()+"; the run is visible to it alone"))
	}

	// P6: the decision deadline.
	switch {
	case c.negotiation == nil:
		out = append(out, check("P6", "decision within the deadline", checkNA, "no negotiation was rehearsed"))
	case c.negotiation.GetState() == negotiatorv1.NegotiationState_NEGOTIATION_STATE_EXPIRED:
		out = append(out, check("P6", "decision within the deadline", checkFailed, c.negotiation.GetReason()))
	default:
		out = append(out, check("P6", "decision within the deadline", checkPassed,
			fmt.Sprintf("the rehearsed negotiation ended in %s, within the %s deadline", c.negotiated.Round(time.Millisecond), c.timeout)))
	}

	// P7: pre/post snapshots.
	switch e := c.enactment; {
	case e == nil:
		out = append(out, check("P7", "pre/post state snapshots", checkNA, "the chain does not reach enactment"))
	case e.GetRecordedPreStateSha256() == "":
		out = append(out, check("P7", "pre/post state snapshots", checkFailed, "the proposal has no recorded pre-state snapshot"))
	case e.GetDryRun().GetPreStateSha256() != e.GetRecordedPreStateSha256():
		out = append(out, check("P7", "pre/post state snapshots", checkFailed,
			fmt.Sprintf("the world moved since submission: pre-state %s recorded, %s now", short(e.GetRecordedPreStateSha256()), short(e.GetDryRun().GetPreStateSha256()))))
	default:
		out = append(out, check("P7", "pre/post state snapshots", checkPassed,
			fmt.Sprintf("pre-state %s matches the recorded snapshot; predicted post-state %s", short(e.GetDryRun().GetPreStateSha256()), short(e.GetDryRun().GetPlannedPostStateSha256()))))
	}
	return out
}
