// rehearse.go holds RehearseEnactment: the rest of a proposal's chain rehearsed for the
// sim-canary's whole-chain dry run — classification by the tenant's policy, the
// approvals the change would need and from whom, the change planned on a copy of the
// world, and the audit entries the coordinator would write on the way to ENACTED —
// with nothing stored, staged or sent.

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/approval"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// validateRehearse checks a RehearseEnactmentRequest.
func validateRehearse(req any) error {
	r := req.(*coordinatorv1.RehearseEnactmentRequest)
	if err := validateID(r.GetId()); err != nil {
		return err
	}
	if m := r.GetManifest(); m != nil {
		if err := manifestpkg.Validate(m); err != nil {
			return invalid("manifest: %v", err)
		}
	}
	return nil
}

// RehearseEnactment implements the RPC. It reads only: the world is read (the target
// was seeded when the proposal was submitted) and planned on a copy, the policy and the
// approval rules are evaluated in memory, and the audit events are planned, not staged.
func (s *Service) RehearseEnactment(ctx context.Context, req *coordinatorv1.RehearseEnactmentRequest) (*coordinatorv1.RehearseEnactmentResponse, error) {
	p, err := s.callersProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	d, _, m, err := decisionChange(p)
	if err != nil {
		return nil, err
	}
	if alt := req.GetManifest(); alt != nil {
		if err := sameChange(m, alt, p.TenantID); err != nil {
			return nil, err
		}
		m = alt
	}
	_, sum, err := manifestpkg.Canonical(m)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "manifest: %v", err)
	}
	c := manifestpkg.Change(p.TenantID, m)
	out := &coordinatorv1.RehearseEnactmentResponse{Status: statusFromString(p.Status), Impact: p.Impact,
		RecordedPreStateSha256: p.PreStateSHA256, ManifestSha256: sum}

	pre, err := s.deps.World.Read(ctx, c.TenantID, c.Target, c.Regions)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the world: %v", err)
	}
	// Policy: fails closed, as classification does (a refusal or an error is reported,
	// and an unclassifiable change needs approval).
	effective := p.Impact
	rehearsed := proto.Clone(d).(*coordinatorv1.Proposal)
	res, perr := s.evaluatePolicy(ctx, p.TenantID, m, pre)
	if perr == nil {
		out.Policy = res.record
		effective = policy.MaxImpact(effective, res.decision.Impact)
		rec := proto.Clone(res.record).(*coordinatorv1.PolicyDecision)
		rec.ApprovalRequired = rec.GetApprovalRequired() || d.GetPolicy().GetApprovalRequired()
		rec.ApprovalsRequired = max(rec.GetApprovalsRequired(), d.GetPolicy().GetApprovalsRequired())
		rehearsed.Policy = rec
	} else {
		if st, ok := status.FromError(perr); ok {
			out.PolicyRefusal = st.Message()
		} else {
			out.PolicyRefusal = "the tenant's policy cannot classify the change: " + perr.Error()
		}
		effective = policy.ImpactHigh
	}
	out.Approval = s.rehearsedApproval(p, rehearsed, effective, perr != nil)

	dr, _, err := s.planDryRun(ctx, p, c)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "plan the change: %v", err)
	}
	out.DryRun = dr
	if planned, err := s.deps.World.Plan(ctx, c); err == nil {
		lines, err := world.Lines(pre, planned)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		for _, l := range lines {
			out.Diff = append(out.Diff, &coordinatorv1.ChangeLine{Path: l.Path, Before: l.Before, After: l.After})
		}
	} else if !errors.Is(err, world.ErrRejected) {
		return nil, status.Errorf(codes.Unavailable, "plan the change: %v", err)
	}
	if out.History, err = s.historyCounts(ctx, p, m); err != nil {
		return nil, storeError(err)
	}
	out.EnactmentBlocked = s.enactmentBlocked(p, d, out)
	events, err := rehearsedEvents(p, rehearsed, out.GetApproval(), dr)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		out.AuditEntries = append(out.AuditEntries, &coordinatorv1.RehearsedAuditEntry{Event: e.event, Key: e.key, Kind: e.kind})
	}
	return out, nil
}

// sameChange refuses a rehearsal manifest that is not a version of the proposal's own:
// a rehearsed negotiation may only move parameters.
func sameChange(own, alt *typesv1.Manifest, tenant string) error {
	switch {
	case alt.GetAction() != own.GetAction():
		return status.Errorf(codes.InvalidArgument, "manifest.action %q is not the proposal's (%q)", alt.GetAction(), own.GetAction())
	case alt.GetTarget() != own.GetTarget():
		return status.Errorf(codes.InvalidArgument, "manifest.target %q is not the proposal's (%q)", alt.GetTarget(), own.GetTarget())
	case !slices.Equal(alt.GetRegions(), own.GetRegions()):
		return status.Errorf(codes.InvalidArgument, "manifest.regions %v are not the proposal's %v", alt.GetRegions(), own.GetRegions())
	case alt.GetTenantId() != own.GetTenantId() && alt.GetTenantId() != tenant:
		return status.Errorf(codes.InvalidArgument, "manifest.tenant_id %q is not the proposal's", alt.GetTenantId())
	}
	return nil
}

// rehearsedApproval says whether the change would need approval (the policy's answer, a
// high impact, or a policy that cannot answer: fail closed), how the recorded votes
// stand under the tenant's rules, and who may approve.
func (s *Service) rehearsedApproval(p *store.Proposal, d *coordinatorv1.Proposal, impact string, unclassified bool) *coordinatorv1.RehearsedApproval {
	required := unclassified || d.GetPolicy().GetApprovalRequired() || impact == policy.ImpactHigh
	out := &coordinatorv1.RehearsedApproval{Required: required, ApprovalsRequired: max(d.GetPolicy().GetApprovalsRequired(), 0)}
	if !required {
		return out
	}
	out.ApprovalsRequired = max(out.GetApprovalsRequired(), 1)
	q := *p
	q.Impact = impact
	res, err := s.approvalOutcome(&q, d)
	if err != nil {
		out.Standing = string(approval.Pending)
		out.Explanation = []string{fmt.Sprintf("the approval rules cannot be evaluated: %v", err)}
		return out
	}
	out.Standing, out.Explanation = string(res.Status), res.Explanation
	return out
}

// enactmentBlocked is why EnactProposal would refuse p now ("" when it would go ahead),
// given the rehearsal's findings.
func (s *Service) enactmentBlocked(p *store.Proposal, d *coordinatorv1.Proposal, r *coordinatorv1.RehearseEnactmentResponse) string {
	var why []string
	if err := notReady(p, d); err != nil {
		why = append(why, status.Convert(err).Message())
	} else if err := s.verifyConsensus(p, d); err != nil {
		why = append(why, status.Convert(err).Message())
	}
	if r.GetPolicyRefusal() != "" {
		why = append(why, "the policy refuses the change: "+r.GetPolicyRefusal())
	}
	if a := r.GetApproval(); a.GetRequired() && a.GetStanding() != string(approval.Approved) {
		why = append(why, "approval required (P3): "+strings.Join(a.GetExplanation(), "; "))
	}
	if !r.GetDryRun().GetPassed() {
		why = append(why, "the dry run fails: "+r.GetDryRun().GetDetail())
	}
	return strings.Join(why, "; ")
}

// rehearsedEvents are the audit events the coordinator would write from p's status on
// to ENACTED, as planChain computes them (keys and versions included): the rest of the
// negotiation and scoring, the approval (one vote event per approval still needed, the
// voters unknown), the dry run and the enactment with its post-state snapshot. A
// proposal that can no longer be enacted gets none.
func rehearsedEvents(p *store.Proposal, d *coordinatorv1.Proposal, a *coordinatorv1.RehearsedApproval, dr *coordinatorv1.DryRunResult) ([]auditEvent, error) {
	var steps []moveStep
	switch p.Status {
	case stSubmitted:
		steps = append(steps, moveStep{to: stNegotiating}, moveStep{to: stAgreed}, moveStep{to: stScored})
	case stNegotiating:
		steps = append(steps, moveStep{to: stAgreed}, moveStep{to: stScored})
	case stAgreed:
		steps = append(steps, moveStep{to: stScored})
	case stScored, stPendingApproval, stApproved, stDryRunPassed, stDryRunFailed:
	default:
		return nil, nil
	}
	if a.GetRequired() && a.GetStanding() != string(approval.Approved) {
		if p.Status != stPendingApproval {
			steps = append(steps, moveStep{to: stPendingApproval})
		}
		n := max(int(a.GetApprovalsRequired()), 1)
		for i := range n {
			vote := auditEvent{kind: store.OutboxEntryKind, event: eventApprovalVote,
				key: fmt.Sprintf("%s:approval:{approver %d}", p.ID, i+1)}
			if i < n-1 {
				steps = append(steps, moveStep{to: stPendingApproval, event: eventApprovalStanding, before: []auditEvent{vote}})
			} else {
				steps = append(steps, moveStep{to: stApproved, before: []auditEvent{vote}})
			}
		}
	}
	result := func(rd *coordinatorv1.Proposal) { rd.DryRunResult = dr }
	if !dr.GetPassed() {
		steps = append(steps, moveStep{to: stDryRunFailed, edit: result})
	} else {
		planned := dr.GetPlannedPostStateSha256()
		steps = append(steps, moveStep{to: stDryRunPassed, edit: result},
			moveStep{to: stEnacted, cols: columns{post: planned}, after: []auditEvent{snapshotAudit(p, "post", planned)}})
	}
	// From d, the rehearsed record: never through decision(), whose cache holds the
	// stored records only.
	_, events, err := planChainFrom(p, d, steps...)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "rehearse the audit trail: %v", err)
	}
	return events, nil
}
