// approve.go holds human approval (P3): the approval request a proposal waiting for
// approval stands for (approvalRequest, with its rules from the tenant's policy and its
// deadline), recording one vote (RecordApproval) in one transaction with its audit
// entry and the move to APPROVED or DENIED when the rules are met, the lifecycle
// engine's wait on a pending proposal (awaitApproval: it asks the hil-gateway to
// notify the approvers, then ends the proposal EXPIRED at the deadline), and what a
// change would do to the world now (DescribeChange).

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/approval"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// ApprovalRequest is what the hil-gateway needs to open an approval request and notify
// the approvers: no manifest content beyond action, target and regions, no people.
type ApprovalRequest struct {
	TenantID, ProposalID, Impact string
	// Summary is "<action> <target> in <regions>".
	Summary  string
	Deadline time.Time
	// RemindAt is when to remind (zero: no reminder).
	RemindAt time.Time
	Needed   int
}

// Approvals is the hil-gateway, as the lifecycle engine sees it.
type Approvals interface {
	// RequestApproval opens the request and queues its notifications; a second call
	// for the same proposal changes nothing.
	RequestApproval(ctx context.Context, r ApprovalRequest) error
}

// Audit events of approval.
const (
	eventApprovalVote     = "approval.vote"
	eventApprovalStanding = "approval.standing"
)

// MaxApprovalReason bounds a vote's reason (characters).
const MaxApprovalReason = 1000

// approvalRules are the approval rules that govern p: the tenant's policy's approval
// block, with the default rule's M the approvals the decision record requires.
func (s *Service) approvalRules(p *store.Proposal, d *coordinatorv1.Proposal) approval.Rules {
	var r approval.Rules
	if s.deps.Policy != nil {
		r = s.deps.Policy.ApprovalRules(p.TenantID)
	}
	r.DefaultApprove = max(int(d.GetPolicy().GetApprovalsRequired()), 1)
	return r
}

// approvalDeadline is when an approval request opened now for p expires: the policy's
// approval.expires_after from now, else the decision's deadline (P6), else (a deadline
// already past, for a proposal reclassified at enactment) one decision timeout from now.
func (s *Service) approvalDeadline(p *store.Proposal, d *coordinatorv1.Proposal, now time.Time) time.Time {
	if after := s.approvalRules(p, d).ExpiresAfter; after > 0 {
		return now.Add(after)
	}
	if dl := s.deadline(p, d); dl.After(now) {
		return dl
	}
	timeout := time.Duration(d.GetPolicy().GetDecisionTimeoutMs()) * time.Millisecond
	if timeout <= 0 {
		timeout = s.deps.DecisionTimeout
	}
	return now.Add(timeout)
}

// openApproval is the edit of the move to PENDING_APPROVAL: the request's deadline and
// standing, and no votes (a proposal reclassified higher is approved afresh).
func (s *Service) openApproval(p *store.Proposal) func(d *coordinatorv1.Proposal) {
	now := s.deps.Now()
	return func(d *coordinatorv1.Proposal) {
		d.Approvals, d.Approvers = nil, nil
		d.ApprovalDeadline = timestamppb.New(s.approvalDeadline(p, d, now))
		if out, err := s.approvalOutcome(p, d); err == nil {
			d.ApprovalStanding = out.Explanation
		}
	}
}

// approvalRequest is the approval model's view of p.
func (s *Service) approvalRequest(p *store.Proposal, d *coordinatorv1.Proposal) approval.Request {
	impact := p.Impact
	if impact == "" {
		impact = approval.ImpactHigh // unclassified is the highest we know (fail closed)
	}
	return approval.Request{ProposalID: p.ID, Tenant: p.TenantID, Proposer: p.CreatedBy, Impact: impact,
		Created: p.CreatedAt, Expires: d.GetApprovalDeadline().AsTime()}
}

// approvalOutcome replays p's recorded votes under its rules.
func (s *Service) approvalOutcome(p *store.Proposal, d *coordinatorv1.Proposal) (approval.Outcome, error) {
	req := s.approvalRequest(p, d)
	if d.GetApprovalDeadline() == nil {
		req.Expires = s.deadline(p, d)
	}
	if !req.Expires.After(req.Created) {
		req.Expires = req.Created.Add(time.Nanosecond)
	}
	out, _, err := approval.Tally(req, s.approvalRules(p, d), votesOf(d.GetApprovals()))
	return out, err
}

// votesOf is the approval model's view of recorded votes.
func votesOf(as []*typesv1.Approval) []approval.Vote {
	out := make([]approval.Vote, len(as))
	for i, a := range as {
		out[i] = voteOf(a)
	}
	return out
}

func voteOf(a *typesv1.Approval) approval.Vote {
	return approval.Vote{Approver: a.GetApprover(), Roles: a.GetRoles(), Groups: a.GetGroups(),
		Decision: approval.Decision(a.GetDecision()), Reason: a.GetReason(), At: a.GetDecidedAt().AsTime()}
}

// RecordApproval implements the RPC (P3): one vote, checked against the tenant's
// approval rules, recorded and signed in one transaction with its audit entry and,
// when the rules are met, the move to APPROVED or DENIED.
func (s *Service) RecordApproval(ctx context.Context, req *coordinatorv1.RecordApprovalRequest) (*coordinatorv1.RecordApprovalResponse, error) {
	if err := validateRecordApproval(req); err != nil {
		return nil, err
	}
	if err := validateID(req.GetProposalId()); err != nil {
		return nil, err
	}
	if err := auth.RequireTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	p, err := s.deps.Store.Proposals().Get(ctx, req.GetTenantId(), req.GetProposalId())
	if err != nil {
		return nil, storeError(err)
	}
	d, err := decision(p)
	if err != nil {
		return nil, err
	}
	if p.Status != stPendingApproval {
		return nil, status.Errorf(codes.FailedPrecondition, "proposal %s is %s, not waiting for approval; the vote changes nothing", p.ID, p.Status)
	}
	a := proto.CloneOf(req.GetApproval())
	a.ProposalId, a.TenantId = p.ID, p.TenantID
	switch {
	case a.GetManifestSha256() == "":
		a.ManifestSha256 = p.ManifestSHA256
	case a.GetManifestSha256() != p.ManifestSHA256:
		return nil, status.Errorf(codes.FailedPrecondition, "the vote is for manifest %s, but proposal %s's manifest is %s", short(a.GetManifestSha256()), p.ID, short(p.ManifestSHA256))
	}
	a.DecidedAt = timestamppb.New(s.deps.Now())
	a.Signature = nil

	st, err := approval.NewState(s.approvalRequest(p, d), s.approvalRules(p, d))
	if err != nil {
		// Rules that do not validate approve nothing (fail closed).
		return nil, status.Errorf(codes.FailedPrecondition, "proposal %s cannot be approved: %v", p.ID, err)
	}
	for _, v := range d.GetApprovals() {
		if n, err := approval.Cast(st, voteOf(v)); err == nil {
			st = n
		}
	}
	next, err := approval.Cast(st, voteOf(a))
	if err != nil {
		return nil, voteError(err)
	}
	if s.deps.Signer != nil {
		if a, err = bundle.SignApproval(s.deps.Signer, a); err != nil {
			return nil, status.Errorf(codes.Internal, "sign the approval: %v", err)
		}
	}
	out := next.Outcome
	to, event := stPendingApproval, eventApprovalStanding
	switch out.Status {
	case approval.Approved:
		to, event = stApproved, transitionEvent(stApproved)
	case approval.Denied:
		to, event = stDenied, transitionEvent(stDenied)
	}
	edit := func(d *coordinatorv1.Proposal) {
		d.Approvals = append(d.Approvals, a)
		d.ApprovalStanding = out.Explanation
		d.Approvers = approvedBy(d.Approvals)
		if to == stDenied {
			d.Reason = fmt.Sprintf("denied by %s (rule %s): %s", strings.Join(out.Deniers, ", "), out.DeniedBy, strings.Join(out.Explanation, "; "))
		}
	}
	vote, err := voteAudit(p, a)
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, causeKey{}, cause{actor: a.GetApprover()})
	stored, err := s.moveChain(ctx, p, nil, moveStep{to: to, event: event, edit: edit, before: []auditEvent{vote}})
	if err != nil {
		return nil, err
	}
	s.deps.Logger.InfoContext(ctx, "approval vote recorded", "proposal_id", p.ID, "tenant_id", p.TenantID,
		"approver", a.GetApprover(), "decision", a.GetDecision(), "mfa_method", a.GetMfaMethod(), "status", stored.Status)
	resp, err := toProto(stored)
	if err != nil {
		return nil, err
	}
	return &coordinatorv1.RecordApprovalResponse{Proposal: resp, Approval: a}, nil
}

// approvedBy is the distinct approvers who approved, in order.
func approvedBy(as []*typesv1.Approval) []string {
	var out []string
	for _, a := range as {
		if a.GetDecision() == string(approval.Approve) && !slices.Contains(out, a.GetApprover()) {
			out = append(out, a.GetApprover())
		}
	}
	return out
}

// voteAudit is the audit entry of one vote: who, what, which second factor and its
// result, the signatures, when; the reason by digest only.
func voteAudit(p *store.Proposal, a *typesv1.Approval) (auditEvent, error) {
	payload, err := bundle.ApprovalPayload(a)
	if err != nil {
		return auditEvent{}, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	body := map[string]any{
		"approver": a.GetApprover(), "decision": a.GetDecision(), "roles": a.GetRoles(), "groups": a.GetGroups(),
		"mfa_method": a.GetMfaMethod(), "mfa_verified": a.GetMfaVerified(), "channel": a.GetChannel(),
		"manifest_sha256": a.GetManifestSha256(), "decided_at": a.GetDecidedAt().AsTime().UTC().Format(time.RFC3339Nano),
		"approver_signed": a.GetApproverSignature() != "", "approver_key_id": a.GetApproverKeyId(),
		"record_sha256": canonical.SHA256Hex(payload),
	}
	if sig := a.GetSignature(); sig != nil {
		body["signature"] = sig.GetSignature()
		body["signature_key_id"] = sig.GetKeyId()
	}
	return auditEvent{kind: store.OutboxEntryKind, event: eventApprovalVote, payload: body,
		key: fmt.Sprintf("%s:approval:%s", p.ID, a.GetApprover())}, nil
}

// voteError is the API's answer to a vote the approval model refused.
func voteError(err error) error {
	switch {
	case errors.Is(err, approval.ErrSelfApproval):
		return status.Errorf(codes.PermissionDenied, "%v", err)
	case errors.Is(err, approval.ErrInvalidVote):
		return status.Errorf(codes.InvalidArgument, "%v", err)
	default: // double vote, resolved, expired, not eligible
		return status.Errorf(codes.FailedPrecondition, "%v", err)
	}
}

func validateRecordApproval(r any) error {
	req := r.(*coordinatorv1.RecordApprovalRequest)
	a := req.GetApproval()
	switch {
	case req.GetProposalId() == "" || req.GetTenantId() == "":
		return status.Error(codes.InvalidArgument, "proposal_id and tenant_id are required")
	case a == nil:
		return status.Error(codes.InvalidArgument, "approval is required")
	case strings.TrimSpace(a.GetApprover()) == "" || len(a.GetApprover()) > 256:
		return status.Error(codes.InvalidArgument, "approval.approver is required (at most 256 bytes)")
	case a.GetDecision() != string(approval.Approve) && a.GetDecision() != string(approval.Deny):
		return status.Errorf(codes.InvalidArgument, "approval.decision %q is not \"approve\" or \"deny\"", a.GetDecision())
	case len([]rune(a.GetReason())) > MaxApprovalReason:
		return status.Errorf(codes.InvalidArgument, "approval.reason is longer than %d characters", MaxApprovalReason)
	case len(a.GetRoles()) > 16 || len(a.GetGroups()) > 64:
		return status.Error(codes.InvalidArgument, "approval: at most 16 roles and 64 groups")
	}
	switch a.GetMfaMethod() {
	case "totp", "webauthn":
		if !a.GetMfaVerified() {
			return status.Error(codes.InvalidArgument, "approval: a vote is recorded only after its second factor verified")
		}
	case "none":
	default:
		return status.Errorf(codes.InvalidArgument, "approval.mfa_method %q is not totp, webauthn or none", a.GetMfaMethod())
	}
	switch a.GetChannel() {
	case "api", "page", "slack", "telegram":
	default:
		return status.Errorf(codes.InvalidArgument, "approval.channel %q is not api, page, slack or telegram", a.GetChannel())
	}
	return nil
}

// awaitApproval is the lifecycle engine's step for a proposal waiting for approval: it
// asks the hil-gateway to open the request (idempotent, so a driver that took the
// proposal over after a crash asks again safely), then waits for a vote that moves it
// (this process's moves wake it; another's are seen by a re-read every few seconds) or
// for the deadline, at which it ends the proposal EXPIRED with the standing as reason.
func (s *Service) awaitApproval(ctx context.Context, p *store.Proposal) (*store.Proposal, error) {
	d, err := decision(p)
	if err != nil {
		return nil, err
	}
	if d.GetApprovalDeadline() == nil {
		// Recorded before approval deadlines existed: give it one.
		return s.moveChain(ctx, p, nil, moveStep{to: stPendingApproval, event: eventApprovalStanding, edit: s.openApproval(p)})
	}
	deadline := d.GetApprovalDeadline().AsTime()
	if s.deps.Approvals != nil && s.deps.Now().Before(deadline) {
		if err := s.deps.Approvals.RequestApproval(ctx, s.approvalNotice(p, d)); err != nil {
			return nil, fmt.Errorf("coordinator: request approval: %w", err)
		}
	}
	for {
		wait := min(time.Until(deadline), 2*time.Second)
		if !s.deps.Now().Before(deadline) {
			return s.expireApproval(ctx, p, d)
		}
		changed, release := s.changes.watch(p.ID)
		select {
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		case <-changed:
		case <-time.After(max(wait, time.Millisecond)):
		}
		release()
		fresh, err := s.deps.Store.Proposals().Get(ctx, p.TenantID, p.ID)
		if err != nil {
			return nil, storeError(err)
		}
		if fresh.Version != p.Version {
			return fresh, nil
		}
	}
}

// approvalNotice is the hil-gateway's request for p.
func (s *Service) approvalNotice(p *store.Proposal, d *coordinatorv1.Proposal) ApprovalRequest {
	deadline := d.GetApprovalDeadline().AsTime()
	r := ApprovalRequest{TenantID: p.TenantID, ProposalID: p.ID, Impact: p.Impact, Deadline: deadline}
	if m, err := submittedManifest(p); err == nil {
		r.Summary = fmt.Sprintf("%s %s in %s", m.GetAction(), m.GetTarget(), strings.Join(m.GetRegions(), ", "))
	}
	if out, err := s.approvalOutcome(p, d); err == nil {
		for _, set := range out.Sets {
			if !set.Satisfied {
				r.Needed++
			}
		}
	}
	if before := s.approvalRules(p, d).ReminderBefore; before > 0 {
		r.RemindAt = deadline.Add(-before)
	}
	return r
}

// expireApproval ends p EXPIRED: nobody met the approval rules before the deadline.
func (s *Service) expireApproval(ctx context.Context, p *store.Proposal, d *coordinatorv1.Proposal) (*store.Proposal, error) {
	standing := d.GetApprovalStanding()
	reason := fmt.Sprintf("approval request expired at %s without a decision", d.GetApprovalDeadline().AsTime().UTC().Format(time.RFC3339))
	if len(standing) > 0 {
		reason += ": " + strings.Join(standing, "; ")
	}
	return s.moveChain(ctx, p, nil, moveStep{to: stExpired, edit: func(d *coordinatorv1.Proposal) { d.Reason = reason }})
}

// DescribeChange implements the RPC: the target's current state, the state the
// change would produce, and the values that differ. It reads only.
func (s *Service) DescribeChange(ctx context.Context, req *coordinatorv1.DescribeChangeRequest) (*coordinatorv1.DescribeChangeResponse, error) {
	p, err := s.callersProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	_, c, _, err := decisionChange(p)
	if err != nil {
		return nil, err
	}
	cur, err := s.deps.World.Read(ctx, c.TenantID, c.Target, c.Regions)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the world: %v", err)
	}
	planned, err := s.deps.World.Plan(ctx, c)
	if errors.Is(err, world.ErrRejected) {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "plan the change: %v", err)
	}
	lines, err := world.Lines(cur, planned)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	out := &coordinatorv1.DescribeChangeResponse{CurrentStateSha256: cur.SHA256, PlannedStateSha256: planned.SHA256,
		MatchesPreState: cur.SHA256 == p.PreStateSHA256}
	if out.CurrentState, err = structOf(cur.JSON); err != nil {
		return nil, err
	}
	if out.PlannedState, err = structOf(planned.JSON); err != nil {
		return nil, err
	}
	for _, l := range lines {
		out.Diff = append(out.Diff, &coordinatorv1.ChangeLine{Path: l.Path, Before: l.Before, After: l.After})
	}
	return out, nil
}

func structOf(raw []byte) (*structpb.Struct, error) {
	st := &structpb.Struct{}
	if err := st.UnmarshalJSON(raw); err != nil {
		return nil, status.Errorf(codes.Internal, "state: %v", err)
	}
	return st, nil
}
