package hil

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/mfa"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
)

// hilCoord is a coordinator that holds one proposal and records the votes it is sent.
type hilCoord struct {
	coordinatorv1.CoordinatorServiceClient
	mu    sync.Mutex
	p     *coordinatorv1.Proposal
	votes []*coordinatorv1.RecordApprovalRequest
}

func (c *hilCoord) GetProposal(_ context.Context, req *coordinatorv1.GetProposalRequest, _ ...grpc.CallOption) (*coordinatorv1.GetProposalResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if req.GetId() != c.p.GetId() {
		return nil, status.Error(codes.NotFound, "proposal not found")
	}
	return &coordinatorv1.GetProposalResponse{Proposal: proto.CloneOf(c.p)}, nil
}

func (c *hilCoord) RecordApproval(_ context.Context, req *coordinatorv1.RecordApprovalRequest, _ ...grpc.CallOption) (*coordinatorv1.RecordApprovalResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.votes = append(c.votes, req)
	a := proto.CloneOf(req.GetApproval())
	a.DecidedAt = timestamppb.Now()
	c.p.Approvals = append(c.p.Approvals, a)
	return &coordinatorv1.RecordApprovalResponse{Proposal: proto.CloneOf(c.p), Approval: a}, nil
}

func (c *hilCoord) recorded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.votes)
}

// hilFixture is a gateway over a SQLite store, a fake coordinator and a fixed clock.
type hilFixture struct {
	s     *Service
	coord *hilCoord
	now   time.Time
}

func newHILFixture(t *testing.T, requireSig bool, keys map[string][]byte) *hilFixture {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	f := &hilFixture{now: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return f.now }
	totpSvc, err := mfa.New(st.MFA(), make([]byte, mfa.KeySize), mfa.Options{Now: clock})
	require.NoError(t, err)
	f.coord = &hilCoord{p: &coordinatorv1.Proposal{
		Id: "01JB0000000000000000000001", TenantId: "t1", CreatedBy: "agent-7",
		Status:           coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL,
		ManifestSha256:   "ab" + strings.Repeat("0", 62),
		ApprovalDeadline: timestamppb.New(f.now.Add(time.Hour)),
	}}
	f.s, err = New(Deps{Coordinator: f.coord, AsService: func(ctx context.Context, _ string) context.Context { return ctx },
		Store: st, MFA: totpSvc, RequireSignature: requireSig, ApproverKeys: keys, Now: clock})
	require.NoError(t, err)
	return f
}

// as is a call by subject, an approver of t1.
func hilAs(subject string) (context.Context, *auth.Principal) {
	p := &auth.Principal{Subject: subject, TenantID: "t1", Roles: []string{auth.RoleApprover}, Groups: []string{"sre"}}
	return auth.WithPrincipal(context.Background(), p), p
}

// enrol enrols subject and returns its secret.
func (f *hilFixture) enrol(t *testing.T, subject string) string {
	t.Helper()
	ctx, _ := hilAs(subject)
	out, err := f.s.EnrollMFA(ctx, &hilv1.EnrollMFARequest{})
	require.NoError(t, err)
	key, err := otp.NewKeyFromURL(out.GetOtpauthUri())
	require.NoError(t, err)
	require.NotEmpty(t, out.GetQrPng())
	return key.Secret()
}

func (f *hilFixture) code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	require.NoError(t, err)
	return c
}

func TestEnrollReplaceNeedsTheOldCode(t *testing.T) {
	t.Parallel()
	f := newHILFixture(t, false, nil)
	old := f.enrol(t, "ana")
	ctx, _ := hilAs("ana")
	_, err := f.s.EnrollMFA(ctx, &hilv1.EnrollMFARequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "a token alone cannot replace an enrolment")
	_, err = f.s.EnrollMFA(ctx, &hilv1.EnrollMFARequest{Totp: "000000"})
	if f.code(t, old, f.now) != "000000" {
		require.Equal(t, codes.Unauthenticated, status.Code(err))
	}
	out, err := f.s.EnrollMFA(ctx, &hilv1.EnrollMFARequest{Totp: f.code(t, old, f.now)})
	require.NoError(t, err)
	key, err := otp.NewKeyFromURL(out.GetOtpauthUri())
	require.NoError(t, err)
	require.NotEqual(t, old, key.Secret(), "a new secret")
}

func TestApproveIsTheTokensSubject(t *testing.T) {
	t.Parallel()
	f := newHILFixture(t, false, nil)
	secret := f.enrol(t, "ana")
	ctx, _ := hilAs("ana")
	_, err := f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve,
		ApproverId: "bob", //nolint:staticcheck // SA1019: the deprecated field is exactly what this test exercises
		Mfa:        &hilv1.MFAProof{Totp: f.code(t, secret, f.now)}})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.Zero(t, f.coord.recorded())

	out, err := f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve,
		Reason: "mail me at ana@example.com", Mfa: &hilv1.MFAProof{Totp: f.code(t, secret, f.now)}})
	require.NoError(t, err)
	require.Equal(t, 1, f.coord.recorded())
	v := f.coord.votes[0].GetApproval()
	require.Equal(t, "ana", v.GetApprover())
	require.Equal(t, "approve", v.GetDecision())
	require.Equal(t, []string{"sre"}, v.GetGroups())
	require.Equal(t, "totp", v.GetMfaMethod())
	require.True(t, v.GetMfaVerified())
	require.Equal(t, "api", v.GetChannel())
	require.NotContains(t, v.GetReason(), "ana@example.com", "the reason is redacted")
	require.Equal(t, "ana", out.GetApproval().GetApproverId())
}

func TestRefusalsComeBeforeTheCodeIsSpent(t *testing.T) {
	t.Parallel()
	f := newHILFixture(t, false, nil)
	secret := f.enrol(t, "agent-7") // the proposer, enrolled as an approver too
	ctx, _ := hilAs("agent-7")
	code := f.code(t, secret, f.now)
	_, err := f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve, Mfa: &hilv1.MFAProof{Totp: code}})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Contains(t, err.Error(), "proposer")
	require.Zero(t, f.coord.recorded())
	// The code was not consumed: it still verifies.
	require.NoError(t, f.s.deps.MFA.Verify(context.Background(), "t1", "agent-7", code))

	_, err = f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: "01JB0000000000000000000009", Decision: hilv1.ApprovalDecision_approve, Mfa: &hilv1.MFAProof{Totp: code}})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Mfa: &hilv1.MFAProof{Totp: code}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "no decision")
}

func TestSecondFactorErrors(t *testing.T) {
	t.Parallel()
	f := newHILFixture(t, false, nil)
	ctx, _ := hilAs("ana")
	req := func(code string) *hilv1.ApproveRequest {
		return &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_deny, Mfa: &hilv1.MFAProof{Totp: code}}
	}
	_, err := f.s.Approve(ctx, req("123456"))
	require.Equal(t, codes.PermissionDenied, status.Code(err), "not enrolled: %v", err)
	secret := f.enrol(t, "ana")
	_, err = f.s.Approve(ctx, req(""))
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	wrong := "000000"
	if wrong == f.code(t, secret, f.now) {
		wrong = "111111"
	}
	for range mfa.DefaultMaxFailures - 1 {
		_, err = f.s.Approve(ctx, req(wrong))
		require.Equal(t, codes.Unauthenticated, status.Code(err))
	}
	_, err = f.s.Approve(ctx, req(wrong)) // the failure that locks
	require.Contains(t, []codes.Code{codes.Unauthenticated, codes.ResourceExhausted}, status.Code(err))
	_, err = f.s.Approve(ctx, req(f.code(t, secret, f.now)))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "locked after %d wrong codes: %v", mfa.DefaultMaxFailures, err)
	require.Zero(t, f.coord.recorded())
}

func TestSignatureOverTheManifestDigest(t *testing.T) {
	t.Parallel()
	signer, err := signing.GenerateEd25519()
	require.NoError(t, err)
	other, err := signing.GenerateEd25519()
	require.NoError(t, err)
	f := newHILFixture(t, true, map[string][]byte{"ana": signer.PublicKeyPEM()})
	secret := f.enrol(t, "ana")
	ctx, _ := hilAs("ana")
	digest := f.coord.p.GetManifestSha256()
	vote := func(sig string, at time.Time) error {
		_, err := f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve,
			Mfa: &hilv1.MFAProof{Totp: f.code(t, secret, at)}, Signature: sig})
		return err
	}
	require.Equal(t, codes.PermissionDenied, status.Code(vote("", f.now)), "required")
	bad, err := other.Sign([]byte(digest))
	require.NoError(t, err)
	require.Equal(t, codes.PermissionDenied, status.Code(vote(bad, f.now)), "another key")
	wrongDigest, err := signer.Sign([]byte("00" + digest[2:]))
	require.NoError(t, err)
	require.Equal(t, codes.PermissionDenied, status.Code(vote(wrongDigest, f.now)), "another digest")
	require.Zero(t, f.coord.recorded())
	good, err := signer.Sign([]byte(digest))
	require.NoError(t, err)
	require.NoError(t, vote(good, f.now))
	v := f.coord.votes[0].GetApproval()
	require.Equal(t, good, v.GetApproverSignature())
	require.Equal(t, signer.KeyID(), v.GetApproverKeyId())
}

func TestDecisionShortForms(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"approve": "approve", "APPROVAL_DECISION_APPROVE": "approve",
		"deny": "deny", "reject": "deny", "APPROVAL_DECISION_REJECT": "deny", "APPROVAL_DECISION_DENY": "deny",
	} {
		var req hilv1.ApproveRequest
		require.NoError(t, protojson.Unmarshal([]byte(`{"decision":"`+in+`"}`), &req), in)
		require.Equal(t, want, decisionName(req.GetDecision()), in)
	}
	var req hilv1.ApproveRequest
	require.Error(t, protojson.Unmarshal([]byte(`{"decision":"maybe"}`), &req))
	require.Empty(t, decisionName(hilv1.ApprovalDecision_APPROVAL_DECISION_UNSPECIFIED))
}
