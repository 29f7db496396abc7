package hil

// The WebAuthn second factor's RPCs (webauthn.go has the ceremonies). Approve takes the
// assertion in mfa.webauthn (hil.go).

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/server"
)

// MaxWebAuthnResponse bounds an authenticator's response (a PublicKeyCredential as
// JSON) in a request, in bytes.
const MaxWebAuthnResponse = 64 << 10

// webAuthnOff is the error for a WebAuthn request where it is not configured:
// FAILED_PRECONDITION, 412 over HTTP.
func webAuthnOff() error {
	return server.NotConfigured("WebAuthn is not configured on this gateway (hil.webauthn.rp_id): use a TOTP code (mfa.totp)")
}

// BeginWebAuthnRegistration implements the RPC: a current TOTP code of the caller's
// enrolment, then the creation options.
func (s *Service) BeginWebAuthnRegistration(ctx context.Context, req *hilv1.BeginWebAuthnRegistrationRequest) (*hilv1.BeginWebAuthnRegistrationResponse, error) {
	pr := auth.FromContext(ctx)
	if pr == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller")
	}
	if s.deps.WebAuthn == nil {
		return nil, webAuthnOff()
	}
	// Adding an authenticator adds a way to approve: it takes the existing second
	// factor, so a stolen token alone cannot.
	if req.GetTotp() == "" {
		return nil, status.Error(codes.Unauthenticated, "a current TOTP code of your enrolment (totp) is required to register an authenticator; enrol with POST /mfa/enroll")
	}
	actor := pr.Actor()
	if err := s.deps.MFA.Verify(ctx, pr.TenantID, actor, req.GetTotp()); err != nil {
		return nil, mfaError(err, s.deps.Now())
	}
	opts, err := s.deps.WebAuthn.BeginRegistration(ctx, pr.TenantID, actor)
	if err != nil {
		return nil, s.webAuthnError(ctx, "begin registration", err)
	}
	st, err := optionsStruct(opts)
	if err != nil {
		return nil, err
	}
	return &hilv1.BeginWebAuthnRegistrationResponse{Options: st}, nil
}

// FinishWebAuthnRegistration implements the RPC: it verifies the authenticator's
// response and stores the credential.
func (s *Service) FinishWebAuthnRegistration(ctx context.Context, req *hilv1.FinishWebAuthnRegistrationRequest) (*hilv1.FinishWebAuthnRegistrationResponse, error) {
	pr := auth.FromContext(ctx)
	if pr == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller")
	}
	if s.deps.WebAuthn == nil {
		return nil, webAuthnOff()
	}
	actor := pr.Actor()
	if err := s.deps.WebAuthn.FinishRegistration(ctx, pr.TenantID, actor, []byte(req.GetCredential())); err != nil {
		return nil, s.webAuthnError(ctx, "finish registration", err)
	}
	creds, err := s.deps.WebAuthn.st.ListWebAuthnCredentials(ctx, pr.TenantID, actor)
	if err != nil {
		return nil, status.Error(codes.Unavailable, "the authenticator was registered; listing them failed")
	}
	s.deps.Logger.InfoContext(ctx, "WebAuthn registration", "tenant_id", pr.TenantID, "subject", actor, "registered", len(creds))
	return &hilv1.FinishWebAuthnRegistrationResponse{Registered: int32(len(creds))}, nil //nolint:gosec // a handful of credentials
}

// BeginWebAuthnApproval implements the RPC: the request options of an assertion whose
// challenge is bound to the proposal's manifest digest. It refuses early what Approve
// would refuse before the second factor (another tenant's proposal, one's own, one not
// waiting or already voted on).
func (s *Service) BeginWebAuthnApproval(ctx context.Context, req *hilv1.BeginWebAuthnApprovalRequest) (*hilv1.BeginWebAuthnApprovalResponse, error) {
	pr := auth.FromContext(ctx)
	if pr == nil {
		return nil, status.Error(codes.Unauthenticated, "no caller")
	}
	if s.deps.WebAuthn == nil {
		return nil, webAuthnOff()
	}
	tenant := pr.TenantID
	got, err := s.deps.Coordinator.GetProposal(s.deps.AsService(ctx, tenant), &coordinatorv1.GetProposalRequest{Id: req.GetProposalId()})
	if err != nil {
		return nil, err
	}
	p := got.GetProposal()
	if p.GetTenantId() != tenant {
		return nil, status.Error(codes.NotFound, "proposal not found")
	}
	actor := pr.Actor()
	if why := s.whyNot(pr, p); why != "" {
		code := codes.FailedPrecondition
		if p.GetCreatedBy() == actor {
			code = codes.PermissionDenied
		}
		return nil, status.Error(code, why)
	}
	opts, err := s.deps.WebAuthn.BeginApproval(ctx, tenant, actor, p.GetManifestSha256())
	if err != nil {
		return nil, s.webAuthnError(ctx, "begin approval", err)
	}
	st, err := optionsStruct(opts)
	if err != nil {
		return nil, err
	}
	return &hilv1.BeginWebAuthnApprovalResponse{Options: st, ManifestSha256: p.GetManifestSha256()}, nil
}

// webAuthnError logs a refused or failed ceremony (with the library's detail) and
// answers with its status (without it).
func (s *Service) webAuthnError(ctx context.Context, what string, err error) error {
	s.deps.Logger.WarnContext(ctx, "webauthn "+what+" refused", "error", err.Error())
	return WebAuthnGRPCError(err)
}

// optionsStruct is a ceremony's options (JSON) as a Struct.
func optionsStruct(opts json.RawMessage) (*structpb.Struct, error) {
	var m map[string]any
	if err := json.Unmarshal(opts, &m); err != nil {
		return nil, status.Error(codes.Internal, "webauthn options")
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil, status.Error(codes.Internal, "webauthn options")
	}
	return st, nil
}

func validateBeginWebAuthnRegistration(r any) error {
	if len(r.(*hilv1.BeginWebAuthnRegistrationRequest).GetTotp()) > 16 {
		return status.Error(codes.InvalidArgument, "totp is a 6-digit code")
	}
	return nil
}

func validateFinishWebAuthnRegistration(r any) error {
	c := r.(*hilv1.FinishWebAuthnRegistrationRequest).GetCredential()
	switch {
	case c == "":
		return status.Error(codes.InvalidArgument, "credential is required: the PublicKeyCredential (JSON) answering the creation options")
	case len(c) > MaxWebAuthnResponse:
		return status.Errorf(codes.InvalidArgument, "credential is longer than %d bytes", MaxWebAuthnResponse)
	}
	return nil
}

func validateBeginWebAuthnApproval(r any) error {
	id := r.(*hilv1.BeginWebAuthnApprovalRequest).GetProposalId()
	if id == "" || len(id) > 64 {
		return status.Error(codes.InvalidArgument, "proposal_id is required")
	}
	return nil
}
