// Package hil is the human-in-loop gateway (I.4.5): it asks people to approve
// high-impact decisions and records their votes, with a second factor (TOTP) and,
// where the policy asks, their signature over the manifest digest (P3).
//
//   - Approve checks who votes (the token's subject, never a body field), their TOTP
//     code (each time step once, wrong codes counted and locked out) and signature,
//     then hands the vote to the coordinator's RecordApproval, which owns the
//     proposal: the vote is recorded, signed and audited there in one transaction,
//     and the proposal moves to APPROVED or DENIED when the approval rules are met.
//   - ListPending shows an approver what to decide: the proposal as recorded, the
//     diff against the current world, the votes so far, what is missing.
//   - RequestApproval (the coordinator's lifecycle engine) opens a request and queues
//     its notifications in one transaction; the Deliverer sends them (delivery.go).
//   - EnrollMFA enrols the caller for TOTP.
//   - Where hil.webauthn is configured, an approver may register a WebAuthn
//     authenticator (BeginWebAuthnRegistration with a current TOTP code,
//     FinishWebAuthnRegistration) and vote with an assertion instead of a code
//     (BeginWebAuthnApproval, whose challenge is bound to the manifest digest, then
//     Approve with mfa.webauthn): webauthn_rpc.go.
//   - The approval page (package web) and the chat channels (internal/notify) vote
//     through the same path.
package hil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/mfa"
	"github.com/decision-fabric/fabric/internal/notify"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
)

// MaxReason bounds a vote's reason (characters).
const MaxReason = 1000

// Deps are the gateway's collaborators.
type Deps struct {
	// Coordinator owns proposals; the gateway reads them and records votes through it.
	Coordinator coordinatorv1.CoordinatorServiceClient
	// AsService is ctx carrying the fabric's service identity for tenant.
	AsService func(ctx context.Context, tenant string) context.Context
	// Store holds the gateway's own tables: TOTP enrolments, approval requests and
	// the notification outbox.
	Store store.Store
	// MFA verifies TOTP codes.
	MFA *mfa.TOTP
	// WebAuthn is the WebAuthn second factor; nil when not configured (hil.webauthn).
	WebAuthn *WebAuthn
	// Verifier checks tokens typed into the approval page.
	Verifier *auth.Verifier
	// Channels are the notification channels: the first for requests, reminders and
	// outcomes, the second for escalations.
	Channels []notify.Channel
	// PublicURL is the approval page's address in links ("https://approvals.example/ui").
	PublicURL string
	// ApproverKeys maps an approver's subject to their PEM public key.
	ApproverKeys map[string][]byte
	// RequireSignature refuses a vote without the approver's signature.
	RequireSignature bool
	// ChatUsers maps "slack:<user>" / "telegram:<user>" to the approver it stands for.
	ChatUsers map[string]ChatUser
	Logger    *slog.Logger
	Now       func() time.Time
}

// ChatUser is the approver a chat identity stands for.
type ChatUser struct {
	Subject, Tenant string
	Roles, Groups   []string
}

// Service implements hilv1.HILServiceServer.
type Service struct {
	hilv1.UnimplementedHILServiceServer
	deps Deps
	// kick wakes the notification deliverer (set by Start).
	kickFn    func()
	deliverer *Deliverer
	sweeper   *sweeper
}

// kick wakes the deliverer, if one runs.
func (s *Service) kick() {
	if s.kickFn != nil {
		s.kickFn()
	}
}

// New returns the service.
func New(d Deps) (*Service, error) {
	if d.Coordinator == nil || d.AsService == nil || d.Store == nil || d.MFA == nil {
		return nil, errors.New("hil: the coordinator, a service identity, a store and MFA are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if len(d.Channels) == 0 {
		d.Channels = []notify.Channel{&notify.Simulated{}}
	}
	return &Service{deps: d}, nil
}

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + hilv1.HILService_ServiceDesc.ServiceName + "/" + name }
	return server.Service{
		Name:     fabric.HIL,
		Register: func(g grpc.ServiceRegistrar) { hilv1.RegisterHILServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return hilv1.RegisterHILServiceHandlerClient(ctx, mux, hilv1.NewHILServiceClient(conn))
		},
		Policy: auth.Policy{
			m("Approve"):         {auth.RoleApprover},
			m("ListPending"):     {auth.RoleApprover},
			m("RequestApproval"): {auth.RoleService},
			m("EnrollMFA"):       {auth.RoleApprover},
			// Registering or using an authenticator is an approver's own business:
			// the approver role only, as for Approve and EnrollMFA.
			m("BeginWebAuthnRegistration"):  {auth.RoleApprover},
			m("FinishWebAuthnRegistration"): {auth.RoleApprover},
			m("BeginWebAuthnApproval"):      {auth.RoleApprover},
		},
		Validators: server.Validators{
			m("Approve"):                    validateApprove,
			m("ListPending"):                validateListPending,
			m("RequestApproval"):            validateRequestApproval,
			m("EnrollMFA"):                  validateEnroll,
			m("BeginWebAuthnRegistration"):  validateBeginWebAuthnRegistration,
			m("FinishWebAuthnRegistration"): validateFinishWebAuthnRegistration,
			m("BeginWebAuthnApproval"):      validateBeginWebAuthnApproval,
		},
	}
}

// vote is one approver's answer from any channel.
type vote struct {
	proposalID string
	decision   string // "approve" | "deny"
	reason     string
	totp       string
	webauthn   string // a WebAuthn assertion (PublicKeyCredential JSON), instead of totp
	signature  string
	channel    string // "api" | "page" | "slack" | "telegram"
}

// Approve implements the RPC.
func (s *Service) Approve(ctx context.Context, req *hilv1.ApproveRequest) (*hilv1.ApproveResponse, error) {
	pr := auth.FromContext(ctx)
	if pr == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller")
	}
	//nolint:staticcheck // the deprecated fields are still read, for old clients
	if id := req.GetApproverId(); id != "" && id != pr.Subject {
		return nil, status.Error(codes.PermissionDenied, "approver_id must be the token's subject: the approver is whoever holds the token")
	}
	reason := req.GetReason()
	if reason == "" {
		reason = req.GetComment() //nolint:staticcheck // deprecated alias
	}
	code := req.GetMfa().GetTotp()
	if code == "" {
		code = req.GetProof().GetMfaCode() //nolint:staticcheck // deprecated alias
	}
	sig := req.GetSignature()
	if sig == "" {
		sig = req.GetProof().GetSignature() //nolint:staticcheck // deprecated alias
	}
	a, p, err := s.vote(ctx, pr, vote{proposalID: req.GetProposalId(), decision: decisionName(req.GetDecision()),
		reason: reason, totp: code, webauthn: req.GetMfa().GetWebauthn(), signature: sig, channel: "api"})
	if err != nil {
		return nil, err
	}
	return &hilv1.ApproveResponse{Approval: &hilv1.Approval{
		ProposalId: a.GetProposalId(), TenantId: a.GetTenantId(), ApproverId: a.GetApprover(),
		Decision: req.GetDecision(), MfaVerified: a.GetMfaVerified(), DecidedAt: a.GetDecidedAt(),
		Record: a, ProposalStatus: p.GetStatus(), Standing: p.GetApprovalStanding(),
	}}, nil
}

// decisionName maps the enum (and its short-form aliases) to the approval model's
// words.
func decisionName(d hilv1.ApprovalDecision) string {
	switch d {
	case hilv1.ApprovalDecision_APPROVAL_DECISION_APPROVE:
		return "approve"
	case hilv1.ApprovalDecision_APPROVAL_DECISION_REJECT:
		return "deny"
	}
	return ""
}

// vote checks the voter's second factor and signature and has the coordinator record
// the vote. Nothing is recorded on any error; a TOTP code is consumed only when the
// vote can otherwise be recorded (the checks that need no code come first).
func (s *Service) vote(ctx context.Context, pr *auth.Principal, v vote) (*typesv1.Approval, *coordinatorv1.Proposal, error) {
	if v.decision != "approve" && v.decision != "deny" {
		return nil, nil, status.Error(codes.InvalidArgument, `decision is required: "approve", or "deny" ("reject")`)
	}
	if len([]rune(v.reason)) > MaxReason {
		return nil, nil, status.Errorf(codes.InvalidArgument, "reason is longer than %d characters", MaxReason)
	}
	if v.webauthn != "" {
		if v.totp != "" {
			return nil, nil, status.Error(codes.InvalidArgument, "give one second factor: mfa.totp or mfa.webauthn, not both")
		}
		if s.deps.WebAuthn == nil {
			return nil, nil, webAuthnOff()
		}
	}
	tenant := pr.TenantID
	svc := s.deps.AsService(ctx, tenant)
	got, err := s.deps.Coordinator.GetProposal(svc, &coordinatorv1.GetProposalRequest{Id: v.proposalID})
	if err != nil {
		return nil, nil, err
	}
	p := got.GetProposal()
	if p.GetTenantId() != tenant {
		return nil, nil, status.Error(codes.NotFound, "proposal not found")
	}
	actor := pr.Actor()
	if why := s.whyNot(pr, p); why != "" {
		code := codes.FailedPrecondition
		if p.GetCreatedBy() == actor {
			code = codes.PermissionDenied
		}
		return nil, nil, status.Error(code, why)
	}
	if v.webauthn == "" && strings.TrimSpace(v.totp) == "" {
		msg := "a TOTP code is required (mfa.totp); enrol with POST /mfa/enroll"
		if s.deps.WebAuthn != nil {
			msg = "a second factor is required: a TOTP code (mfa.totp), or a WebAuthn assertion (mfa.webauthn) answering POST /approve/{proposal_id}/webauthn/begin"
		}
		return nil, nil, status.Error(codes.Unauthenticated, msg)
	}
	keyID, err := s.checkSignature(pr, p, v.signature)
	if err != nil {
		return nil, nil, err
	}
	method := "totp"
	if v.webauthn != "" {
		// The assertion's challenge must have been issued for this manifest digest;
		// its session is used up whatever the outcome.
		method = "webauthn"
		if err := s.deps.WebAuthn.FinishApproval(ctx, tenant, actor, p.GetManifestSha256(), []byte(v.webauthn)); err != nil {
			s.deps.Logger.WarnContext(ctx, "webauthn assertion refused", "proposal_id", p.GetId(), "tenant_id", tenant,
				"approver", actor, "error", err.Error())
			return nil, nil, WebAuthnGRPCError(err)
		}
	} else if err := s.deps.MFA.Verify(ctx, tenant, actor, v.totp); err != nil {
		return nil, nil, mfaError(err, s.deps.Now())
	}
	a := &typesv1.Approval{
		ProposalId: p.GetId(), TenantId: tenant, ManifestSha256: p.GetManifestSha256(),
		Approver: actor, Roles: slices.Clone(pr.Roles), Groups: slices.Clone(pr.Groups),
		Decision: v.decision, Reason: redact.String(v.reason),
		MfaMethod: method, MfaVerified: true,
		ApproverSignature: v.signature, ApproverKeyId: keyID, Channel: v.channel,
	}
	rec, err := s.deps.Coordinator.RecordApproval(svc, &coordinatorv1.RecordApprovalRequest{ProposalId: p.GetId(), TenantId: tenant, Approval: a})
	if err != nil {
		return nil, nil, err
	}
	after := rec.GetProposal()
	if st := after.GetStatus(); st != coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL {
		s.resolved(ctx, after)
	}
	s.deps.Logger.InfoContext(ctx, "approval vote", "proposal_id", p.GetId(), "tenant_id", tenant, "approver", actor,
		"decision", v.decision, "channel", v.channel, "status", after.GetStatus().String())
	return rec.GetApproval(), after, nil
}

// whyNot says why pr may not vote on p now ("" when they may).
func (s *Service) whyNot(pr *auth.Principal, p *coordinatorv1.Proposal) string {
	actor := pr.Actor()
	switch {
	case p.GetStatus() != coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL:
		return fmt.Sprintf("proposal %s is %s, not waiting for approval", p.GetId(), strings.TrimPrefix(p.GetStatus().String(), "PROPOSAL_STATUS_"))
	case p.GetCreatedBy() == actor:
		return "you proposed it: the proposer can never approve their own proposal"
	case !pr.HasAnyRole(auth.RoleApprover):
		return "your token has no approver role"
	}
	if dl := p.GetApprovalDeadline(); dl != nil && !s.deps.Now().Before(dl.AsTime()) {
		return fmt.Sprintf("the approval request expired at %s", dl.AsTime().UTC().Format(time.RFC3339))
	}
	for _, a := range p.GetApprovals() {
		if a.GetApprover() == actor {
			return fmt.Sprintf("you already voted %s", a.GetDecision())
		}
	}
	return ""
}

// checkSignature verifies the approver's signature over the manifest digest (required
// when configured) and returns the key's id.
func (s *Service) checkSignature(pr *auth.Principal, p *coordinatorv1.Proposal, sig string) (string, error) {
	if sig == "" {
		if s.deps.RequireSignature {
			return "", status.Error(codes.PermissionDenied, "the approver's signature over the manifest digest is required: cosign sign-blob over the manifest_sha256 (hex, no newline), base64, in \"signature\"")
		}
		return "", nil
	}
	pem, ok := s.deps.ApproverKeys[pr.Subject]
	if !ok {
		return "", status.Errorf(codes.PermissionDenied, "no public key is registered for approver %s (hil.approver_keys_dir)", pr.Actor())
	}
	if err := signing.Verify(pem, []byte(p.GetManifestSha256()), sig); err != nil {
		return "", status.Error(codes.PermissionDenied, "the signature does not verify over the manifest digest with the approver's registered key")
	}
	id, err := signing.KeyIDFromPEM(pem)
	if err != nil {
		return "", status.Errorf(codes.Internal, "approver key: %v", err)
	}
	return id, nil
}

// mfaError is the API's answer to a refused second factor. A store error fails
// closed (UNAVAILABLE: the code is not accepted).
func mfaError(err error, now time.Time) error {
	var locked *mfa.LockedError
	switch {
	case errors.As(err, &locked):
		return status.Errorf(codes.ResourceExhausted, "too many wrong codes: try again in %s", locked.RetryAfter(now).Round(time.Second))
	case errors.Is(err, mfa.ErrNotEnrolled):
		return status.Error(codes.PermissionDenied, "no TOTP enrolment: enrol with POST /mfa/enroll first")
	case errors.Is(err, mfa.ErrReplayed):
		return status.Error(codes.Unauthenticated, "this code was already used: wait for the next one")
	case errors.Is(err, mfa.ErrInvalidCode):
		return status.Error(codes.Unauthenticated, "wrong or expired TOTP code")
	}
	return status.Error(codes.Unavailable, "the second factor cannot be checked now; nothing was recorded")
}

// ListPending implements the RPC: what the tenant's approvers must decide, oldest
// first. It reads only.
func (s *Service) ListPending(ctx context.Context, req *hilv1.ListPendingRequest) (*hilv1.ListPendingResponse, error) {
	pr := auth.FromContext(ctx)
	if pr == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller")
	}
	if err := auth.RequireTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	items, err := s.pending(ctx, pr)
	if err != nil {
		return nil, err
	}
	return &hilv1.ListPendingResponse{Pending: items}, nil
}

// pending lists pr's tenant's proposals waiting for approval, oldest first.
func (s *Service) pending(ctx context.Context, pr *auth.Principal) ([]*hilv1.PendingApproval, error) {
	svc := s.deps.AsService(ctx, pr.TenantID)
	list, err := s.deps.Coordinator.ListProposals(svc, &coordinatorv1.ListProposalsRequest{
		Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL, Limit: 500})
	if err != nil {
		return nil, err
	}
	ps := list.GetProposals()
	out := make([]*hilv1.PendingApproval, 0, len(ps))
	for i := len(ps) - 1; i >= 0; i-- { // the list is newest first
		item, err := s.item(ctx, pr, ps[i])
		if err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

// item is one pending proposal as an approver sees it.
func (s *Service) item(ctx context.Context, pr *auth.Principal, p *coordinatorv1.Proposal) (*hilv1.PendingApproval, error) {
	it := &hilv1.PendingApproval{
		ProposalId: p.GetId(), TenantId: p.GetTenantId(), Impact: p.GetImpact(), Summary: summary(p.GetManifest()),
		RequestedAt: p.GetUpdatedAt(), Proposal: p, Deadline: p.GetApprovalDeadline(),
	}
	for _, a := range p.GetApprovals() {
		if a.GetDecision() == "approve" {
			it.ApprovedBy = append(it.ApprovedBy, a.GetApprover())
		} else {
			it.DeniedBy = append(it.DeniedBy, a.GetApprover())
		}
	}
	for _, line := range p.GetApprovalStanding() {
		if strings.Contains(line, "needs") || strings.Contains(line, "missing") || strings.Contains(line, "more") {
			it.Needed = append(it.Needed, line)
		}
	}
	it.ApprovalsNeeded = int32(len(it.Needed))
	if why := s.whyNot(pr, p); why != "" {
		it.WhyNot = why
	} else {
		it.CanVote = true
	}
	ch, err := s.deps.Coordinator.DescribeChange(s.deps.AsService(ctx, pr.TenantID), &coordinatorv1.DescribeChangeRequest{Id: p.GetId()})
	switch {
	case err == nil:
		it.Diff = ch.GetDiff()
		if !ch.GetMatchesPreState() {
			it.Needed = append(it.Needed, "the target changed since the proposal was submitted: enactment will refuse it")
		}
	case status.Code(err) == codes.FailedPrecondition:
		it.Needed = append(it.Needed, "the world refuses this change now: "+status.Convert(err).Message())
	default:
		return nil, err
	}
	return it, nil
}

// summary is what a notification or a list says of a manifest: action, target,
// regions; never parameters.
func summary(m *typesv1.Manifest) string {
	if m == nil {
		return ""
	}
	out := m.GetAction() + " " + m.GetTarget()
	if len(m.GetRegions()) > 0 {
		out += " in " + strings.Join(m.GetRegions(), ", ")
	}
	return out
}

// EnrollMFA implements the RPC.
func (s *Service) EnrollMFA(ctx context.Context, req *hilv1.EnrollMFARequest) (*hilv1.EnrollMFAResponse, error) {
	pr := auth.FromContext(ctx)
	if pr == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller")
	}
	actor := pr.Actor()
	_, err := s.deps.Store.MFA().GetTOTP(ctx, pr.TenantID, actor)
	switch {
	case err == nil:
		// Replacing an enrolment takes the old one's code: a stolen token alone cannot
		// move someone's second factor to a new device.
		if req.GetTotp() == "" {
			return nil, status.Error(codes.Unauthenticated, "already enrolled: give a current code of the existing enrolment (totp) to replace it")
		}
		if err := s.deps.MFA.Verify(ctx, pr.TenantID, actor, req.GetTotp()); err != nil {
			return nil, mfaError(err, s.deps.Now())
		}
	case errors.Is(err, store.ErrNotFound):
	default:
		return nil, status.Error(codes.Unavailable, "the enrolment store is unavailable")
	}
	e, err := s.deps.MFA.Enroll(ctx, pr.TenantID, actor)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "enrolment failed; try again")
	}
	s.deps.Logger.InfoContext(ctx, "TOTP enrolment", "tenant_id", pr.TenantID, "subject", actor)
	return &hilv1.EnrollMFAResponse{OtpauthUri: e.URI, QrPng: e.QRPNG}, nil
}

func validateApprove(r any) error {
	req := r.(*hilv1.ApproveRequest)
	switch {
	case req.GetProposalId() == "" || len(req.GetProposalId()) > 64:
		return status.Error(codes.InvalidArgument, "proposal_id is required")
	case decisionName(req.GetDecision()) == "":
		return status.Error(codes.InvalidArgument, `decision is required: "approve", or "deny" ("reject")`)
	case len(req.GetMfa().GetTotp()) > 16:
		return status.Error(codes.InvalidArgument, "mfa.totp is a 6-digit code")
	case len(req.GetMfa().GetWebauthn()) > MaxWebAuthnResponse:
		return status.Errorf(codes.InvalidArgument, "mfa.webauthn is longer than %d bytes", MaxWebAuthnResponse)
	case req.GetMfa().GetWebauthn() != "" && (req.GetMfa().GetTotp() != "" || req.GetProof().GetMfaCode() != ""): //nolint:staticcheck // the deprecated alias of mfa.totp counts too
		return status.Error(codes.InvalidArgument, "give one second factor: mfa.totp or mfa.webauthn, not both")
	case len(req.GetSignature()) > 4096:
		return status.Error(codes.InvalidArgument, "signature is longer than 4096 bytes")
	case len([]rune(req.GetReason())) > MaxReason:
		return status.Errorf(codes.InvalidArgument, "reason is longer than %d characters", MaxReason)
	}
	return nil
}

func validateListPending(r any) error {
	if r.(*hilv1.ListPendingRequest).GetTenantId() == "" {
		return status.Error(codes.InvalidArgument, "tenant_id is required")
	}
	return nil
}

func validateEnroll(r any) error {
	if len(r.(*hilv1.EnrollMFARequest).GetTotp()) > 16 {
		return status.Error(codes.InvalidArgument, "totp is a 6-digit code")
	}
	return nil
}

func validateRequestApproval(r any) error {
	req := r.(*hilv1.RequestApprovalRequest)
	switch {
	case req.GetProposalId() == "" || req.GetTenantId() == "":
		return status.Error(codes.InvalidArgument, "proposal_id and tenant_id are required")
	case req.GetDeadline() == nil:
		return status.Error(codes.InvalidArgument, "deadline is required")
	case len(req.GetSummary()) > 1000:
		return status.Error(codes.InvalidArgument, "summary is longer than 1000 bytes")
	}
	return nil
}

// ts is t as a timestamp, nil for the zero time.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
