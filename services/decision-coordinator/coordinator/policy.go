package coordinator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/actions"
	"github.com/decision-fabric/fabric/internal/classify"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

type policyResult struct {
	decision policy.Decision
	record   *coordinatorv1.PolicyDecision
}

// evaluatePolicy runs the tenant's decision policy on the change manifest m would make
// to the world in state pre, with the size and cost of the change computed from a
// dry-run plan. It fails closed: when the size cannot be computed (the world rejects
// the plan, or the plan cannot be compared with pre) the policy is told so and the
// impact is high, never the low a zero delta would give.
//
// Refusals are status errors: a cross-tenant proposal refused by policy is
// PERMISSION_DENIED (P5); a change over the tenant's cost cap FAILED_PRECONDITION; an
// action outside the catalogue (internal/actions) under `unknown_actions: refuse`, or
// a malformed input, INVALID_ARGUMENT. A rule failing at run time (policy.ErrEvaluation)
// and an infrastructure failure are returned as they are (not status errors): there is
// no classification, and nothing may proceed on one.
func (s *Service) evaluatePolicy(ctx context.Context, tenant string, m *typesv1.Manifest, pre world.Snapshot) (policyResult, error) {
	in, c := classify.Input(tenant, m)
	if s.deps.Policy == nil {
		return policyResult{}, errors.New("coordinator: no decision policy")
	}
	plan, err := s.deps.World.Plan(ctx, c)
	if err := classify.Size(&in, pre, plan, err); err != nil {
		return policyResult{}, err
	}
	d, err := s.deps.Policy.Evaluate(in)
	switch {
	case errors.Is(err, policy.ErrUnknownActionRefused):
		return policyResult{}, status.Errorf(codes.InvalidArgument, "manifest.action: %v", actions.UnknownActionError(m.GetAction()))
	case errors.Is(err, policy.ErrCrossTenantDenied):
		return policyResult{}, status.Errorf(codes.PermissionDenied, "cross-tenant proposal for %q refused by policy (P5)", m.GetTenantId())
	case errors.Is(err, policy.ErrCostCapExceeded):
		return policyResult{}, status.Errorf(codes.FailedPrecondition, "estimated cost change %.2f %s/month exceeds the tenant's cap of %.2f", in.CostDeltaMonthly, d.Currency, d.MaxMonthlyCostDelta)
	case errors.Is(err, policy.ErrInvalidInput):
		return policyResult{}, status.Errorf(codes.InvalidArgument, "%v", err)
	case err != nil:
		return policyResult{}, fmt.Errorf("coordinator: policy: %w", err)
	}
	return policyResult{decision: d, record: &coordinatorv1.PolicyDecision{
		ComputedImpact: d.ComputedImpact, Quorum: d.Quorum, ApprovalRequired: d.ApprovalRequired,
		ApprovalsRequired: int32(d.ApprovalsRequired), Reasons: d.Reasons,
		CostDeltaMonthly: math.Round(in.CostDeltaMonthly*100) / 100, Currency: d.Currency,
		DecisionTimeoutMs: d.DecisionTimeout.Milliseconds(), PolicyDigest: d.PolicyDigest,
	}}, nil
}

// submissionPolicyError is what a submitter is told when the policy cannot classify the
// proposal: a rule that fails at run time refuses it (FAILED_PRECONDITION, nothing is
// stored) rather than letting it in at some impact.
func submissionPolicyError(err error) error {
	if errors.Is(err, policy.ErrEvaluation) {
		return status.Errorf(codes.FailedPrecondition, "the tenant's policy cannot classify this proposal, so it is refused: %v", err)
	}
	return err
}

// Stages at which a proposal is classified again.
const (
	stageAgreement = "agreement"
	stageEnactment = "enactment"
)

// reclassification is the policy's answer on the change that will actually be made,
// when it asks for more than the proposal was classified (and approved) at.
type reclassification struct {
	stage    string
	from, to string // effective impact before and after
	// record is the decision record's new policy decision: approval required.
	record *coordinatorv1.PolicyDecision
	// refused is set instead when the policy refuses the change itself (cost cap,
	// cross-tenant, unknown action): a status error.
	refused error
	// manifestSHA256 identifies the manifest that was classified.
	manifestSHA256 string
}

// reclassify runs the policy again on the change m would make to the world in state
// pre (the agreed manifest after negotiation, the exact change at enactment) and
// compares the answer with p's classification: nil when it asks for nothing more.
// It fails closed: a policy or world error while classifying means high impact, with
// the reason recorded; it never keeps the old classification.
//
// Anything higher — a higher impact, approval newly required, more approvers — puts
// the proposal on the approval path: the returned record requires approval (at least
// the approvers already required, and one), keeps the negotiated quorum and deadline,
// and leads its reasons with the reclassification.
func (s *Service) reclassify(ctx context.Context, p *store.Proposal, d *coordinatorv1.Proposal, m *typesv1.Manifest, pre world.Snapshot, preErr error, stage string) *reclassification {
	old := d.GetPolicy()
	_, sum, sumErr := manifestpkg.Canonical(m)
	re := &reclassification{stage: stage, from: p.Impact, manifestSHA256: sum}
	var res policyResult
	// A manifest with no canonical form cannot be identified in the audit log: it is
	// not classified either.
	err := cmp.Or(preErr, sumErr)
	if err == nil {
		res, err = s.evaluatePolicy(ctx, p.TenantID, m, pre)
	}
	if _, isStatus := status.FromError(err); err != nil && isStatus {
		re.refused = err
		return re
	}
	if err != nil {
		reason := fmt.Sprintf("impact unknown: classifying the change at %s failed: %v → high", stage, err)
		record := proto.Clone(old).(*coordinatorv1.PolicyDecision)
		if record == nil {
			record = &coordinatorv1.PolicyDecision{}
		}
		record.ComputedImpact, record.Reasons = policy.ImpactHigh, []string{reason}
		res = policyResult{decision: policy.Decision{Impact: policy.ImpactHigh, ApprovalRequired: true}, record: record}
	}
	dec := res.decision
	// The rule is classify.Reclassify, which the replay applies too.
	g, higher := classify.Reclassify(
		classify.Gate{Impact: p.Impact, ApprovalRequired: old.GetApprovalRequired(), ApprovalsRequired: int(old.GetApprovalsRequired())},
		classify.GateOf(dec))
	if !higher {
		return nil
	}
	re.to = g.Impact
	record := proto.Clone(res.record).(*coordinatorv1.PolicyDecision)
	record.Quorum, record.DecisionTimeoutMs = old.GetQuorum(), old.GetDecisionTimeoutMs() // the negotiation is over
	record.ApprovalRequired, record.ApprovalsRequired = g.ApprovalRequired, int32(g.ApprovalsRequired)
	what := map[string]string{stageAgreement: "the agreed change", stageEnactment: "the change to enact"}[stage]
	lead := fmt.Sprintf("reclassified at %s: %s is %s impact (classified %s before) → approval required, %d approval(s)",
		stage, what, dec.Impact, orNone(p.Impact), record.GetApprovalsRequired())
	record.Reasons = append([]string{lead}, record.GetReasons()...)
	re.record = record
	return re
}

// audit is the audit event of a reclassification of p.
func (re *reclassification) audit(p *store.Proposal) auditEvent {
	payload := map[string]any{
		"stage": re.stage, "from_impact": re.from, "manifest_sha256": re.manifestSHA256,
	}
	if re.refused != nil {
		payload["refused"] = status.Convert(re.refused).Message()
	} else {
		payload["to_impact"] = re.to
		payload["approval_required"] = true
		payload["approvals_required"] = re.record.GetApprovalsRequired()
		payload["reasons"] = re.record.GetReasons()
	}
	return auditEvent{kind: store.OutboxEntryKind, event: eventReclassified, payload: payload,
		key: fmt.Sprintf("%s:%d:%s:%s", p.ID, p.Version, eventReclassified, re.stage)}
}

// eventReclassified is the audit event of a proposal classified higher (or refused) on
// the change that will actually be made.
const eventReclassified = "proposal.reclassified"

// edit applies the reclassification to a decision record. Approvals recorded before
// were given for a lower classification and no longer count: the approvers approve
// the change as it now stands.
func (re *reclassification) edit(d *coordinatorv1.Proposal) {
	d.Policy = re.record
	d.Reason = re.record.GetReasons()[0]
	d.Approvers, d.Approvals = nil, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
