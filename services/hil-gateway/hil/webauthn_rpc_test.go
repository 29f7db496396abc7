package hil

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/server"
)

// newWebAuthnFixture is newHILFixture with the WebAuthn factor configured for
// waRPID and waOrigin (the soft authenticator's).
func newWebAuthnFixture(t *testing.T) *hilFixture {
	t.Helper()
	f := newHILFixture(t, false, nil)
	wa, err := NewWebAuthn(f.s.deps.Store.WebAuthn(), WebAuthnConfig{
		RPID: waRPID, RPDisplayName: "Decision Fabric", RPOrigins: []string{waOrigin}, Now: func() time.Time { return f.now },
	})
	require.NoError(t, err)
	f.s.deps.WebAuthn = wa
	return f
}

func optionsJSON(t *testing.T, st *structpb.Struct) []byte {
	t.Helper()
	require.NotNil(t, st)
	b, err := protojson.Marshal(st)
	require.NoError(t, err)
	return b
}

// registerWebAuthn registers a through the RPCs, with subject's TOTP secret.
func (f *hilFixture) registerWebAuthn(t *testing.T, subject, secret string, a *softAuthenticator) {
	t.Helper()
	ctx, _ := hilAs(subject)
	begun, err := f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{Totp: f.code(t, secret, f.now)})
	require.NoError(t, err)
	_, err = f.s.FinishWebAuthnRegistration(ctx, &hilv1.FinishWebAuthnRegistrationRequest{Credential: string(a.register(t, optionsJSON(t, begun.GetOptions())))})
	require.NoError(t, err)
}

// assertFor begins an approval of the fixture's proposal as subject and answers it with a.
func (f *hilFixture) assertFor(t *testing.T, subject string, a *softAuthenticator) string {
	t.Helper()
	ctx, _ := hilAs(subject)
	begun, err := f.s.BeginWebAuthnApproval(ctx, &hilv1.BeginWebAuthnApprovalRequest{ProposalId: f.coord.p.GetId()})
	require.NoError(t, err)
	require.Equal(t, f.coord.p.GetManifestSha256(), begun.GetManifestSha256())
	return string(a.assert(t, optionsJSON(t, begun.GetOptions())))
}

func (f *hilFixture) approveWith(subject string, mfa *hilv1.MFAProof) error {
	ctx, _ := hilAs(subject)
	_, err := f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve, Mfa: mfa})
	return err
}

func TestWebAuthnRPCRegisterThenApprove(t *testing.T) {
	t.Parallel()
	f := newWebAuthnFixture(t)
	secret := f.enrol(t, "ana")
	ctx, _ := hilAs("ana")
	a := newSoftAuthenticator(t)

	begun, err := f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{Totp: f.code(t, secret, f.now)})
	require.NoError(t, err)
	opts := begun.GetOptions().AsMap()
	require.Equal(t, waRPID, opts["rp"].(map[string]any)["id"])
	require.Equal(t, "none", opts["attestation"])
	done, err := f.s.FinishWebAuthnRegistration(ctx, &hilv1.FinishWebAuthnRegistrationRequest{Credential: string(a.register(t, optionsJSON(t, begun.GetOptions())))})
	require.NoError(t, err)
	require.EqualValues(t, 1, done.GetRegistered())

	// The assertion options' challenge is bound to the proposal's manifest digest.
	b, err := f.s.BeginWebAuthnApproval(ctx, &hilv1.BeginWebAuthnApprovalRequest{ProposalId: f.coord.p.GetId()})
	require.NoError(t, err)
	require.Equal(t, f.coord.p.GetManifestSha256(), b.GetManifestSha256())
	require.Equal(t, waRPID, b.GetOptions().AsMap()["rpId"])
	require.Len(t, waChallenge(t, optionsJSON(t, b.GetOptions())), 32)

	out, err := f.s.Approve(ctx, &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve,
		Reason: "diff checked", Mfa: &hilv1.MFAProof{Webauthn: string(a.assert(t, optionsJSON(t, b.GetOptions())))}})
	require.NoError(t, err)
	require.True(t, out.GetApproval().GetMfaVerified())
	require.Equal(t, 1, f.coord.recorded())
	v := f.coord.votes[0].GetApproval()
	require.Equal(t, "webauthn", v.GetMfaMethod())
	require.True(t, v.GetMfaVerified())
	require.Equal(t, "ana", v.GetApprover())
	require.Equal(t, f.coord.p.GetManifestSha256(), v.GetManifestSha256())

	creds, err := f.s.deps.Store.WebAuthn().ListWebAuthnCredentials(t.Context(), "t1", "ana")
	require.NoError(t, err)
	require.Equal(t, uint32(1), creds[0].SignCount, "the counter advanced")

	// The TOTP code of this time step was spent on the registration; a code still
	// works as the factor at the next one.
	f.coord.p.Approvals = nil
	f.now = f.now.Add(30 * time.Second)
	require.NoError(t, f.approveWith("ana", &hilv1.MFAProof{Totp: f.code(t, secret, f.now)}))
	require.Equal(t, "totp", f.coord.votes[1].GetApproval().GetMfaMethod())
}

// An assertion made for another manifest cannot approve this one: neither one begun
// for another digest, nor one begun for this proposal before its manifest changed.
func TestWebAuthnRPCWrongManifestRefused(t *testing.T) {
	t.Parallel()
	f := newWebAuthnFixture(t)
	secret := f.enrol(t, "ana")
	a := newSoftAuthenticator(t)
	f.registerWebAuthn(t, "ana", secret, a)

	other, err := f.s.deps.WebAuthn.BeginApproval(t.Context(), "t1", "ana", waDigestB)
	require.NoError(t, err)
	err = f.approveWith("ana", &hilv1.MFAProof{Webauthn: string(a.assert(t, other))})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	stale := f.assertFor(t, "ana", a)
	f.coord.mu.Lock()
	f.coord.p.ManifestSha256 = "cd" + f.coord.p.GetManifestSha256()[2:]
	f.coord.mu.Unlock()
	err = f.approveWith("ana", &hilv1.MFAProof{Webauthn: stale})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	// Garbage and another approver's assertion are refused too.
	err = f.approveWith("ana", &hilv1.MFAProof{Webauthn: `{"id":"AA","type":"public-key"}`})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	bo := f.enrol(t, "bo")
	b := newSoftAuthenticator(t)
	f.registerWebAuthn(t, "bo", bo, b)
	err = f.approveWith("ana", &hilv1.MFAProof{Webauthn: f.assertFor(t, "bo", b)})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "bo's assertion is not ana's: %v", err)

	require.Zero(t, f.coord.recorded(), "nothing recorded")
}

func TestWebAuthnRPCReplayRefused(t *testing.T) {
	t.Parallel()
	f := newWebAuthnFixture(t)
	secret := f.enrol(t, "ana")
	a := newSoftAuthenticator(t)
	f.registerWebAuthn(t, "ana", secret, a)

	resp := f.assertFor(t, "ana", a)
	require.NoError(t, f.approveWith("ana", &hilv1.MFAProof{Webauthn: resp}))
	require.Equal(t, 1, f.coord.recorded())

	// The vote is forgotten (as if the proposal were asked again): the same assertion
	// still cannot vote a second time.
	f.coord.mu.Lock()
	f.coord.p.Approvals = nil
	f.coord.mu.Unlock()
	err := f.approveWith("ana", &hilv1.MFAProof{Webauthn: resp})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	// A clone of the authenticator (same key, a counter already used) is refused.
	clone := a.clone()
	clone.count = 0
	err = f.approveWith("ana", &hilv1.MFAProof{Webauthn: f.assertFor(t, "ana", clone)})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Equal(t, 1, f.coord.recorded(), "nothing more recorded")
}

func TestWebAuthnRPCBothProofsRefused(t *testing.T) {
	t.Parallel()
	f := newWebAuthnFixture(t)
	secret := f.enrol(t, "ana")
	a := newSoftAuthenticator(t)
	f.registerWebAuthn(t, "ana", secret, a)
	f.now = f.now.Add(30 * time.Second) // a fresh TOTP time step

	resp := f.assertFor(t, "ana", a)
	code := f.code(t, secret, f.now)
	both := &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve,
		Mfa: &hilv1.MFAProof{Totp: code, Webauthn: resp}}
	require.Equal(t, codes.InvalidArgument, status.Code(validateApprove(both)))
	ctx, _ := hilAs("ana")
	_, err := f.s.Approve(ctx, both)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	legacy := &hilv1.ApproveRequest{ProposalId: f.coord.p.GetId(), Decision: hilv1.ApprovalDecision_approve,
		Proof: &hilv1.ApprovalProof{MfaCode: code}, //nolint:staticcheck // SA1019: the deprecated alias of mfa.totp counts as a code
		Mfa:   &hilv1.MFAProof{Webauthn: resp}}
	require.Equal(t, codes.InvalidArgument, status.Code(validateApprove(legacy)))
	_, err = f.s.Approve(ctx, legacy)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Zero(t, f.coord.recorded())

	// Neither factor was spent: each alone still works.
	require.NoError(t, f.s.deps.MFA.Verify(t.Context(), "t1", "ana", code))
	require.NoError(t, f.approveWith("ana", &hilv1.MFAProof{Webauthn: resp}))
}

func TestWebAuthnRPCNotConfigured(t *testing.T) {
	t.Parallel()
	f := newHILFixture(t, false, nil)
	secret := f.enrol(t, "ana")
	ctx, _ := hilAs("ana")
	notConfigured := func(err error) {
		t.Helper()
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		var reason string
		for _, d := range status.Convert(err).Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				reason = info.GetReason()
			}
		}
		require.Equal(t, server.ReasonNotConfigured, reason, "412 over HTTP")
	}
	_, err := f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{Totp: f.code(t, secret, f.now)})
	notConfigured(err)
	_, err = f.s.FinishWebAuthnRegistration(ctx, &hilv1.FinishWebAuthnRegistrationRequest{Credential: "{}"})
	notConfigured(err)
	_, err = f.s.BeginWebAuthnApproval(ctx, &hilv1.BeginWebAuthnApprovalRequest{ProposalId: f.coord.p.GetId()})
	notConfigured(err)
	notConfigured(f.approveWith("ana", &hilv1.MFAProof{Webauthn: `{"id":"AA"}`}))
	require.Zero(t, f.coord.recorded())
	// The code was not spent by the refusals.
	require.NoError(t, f.approveWith("ana", &hilv1.MFAProof{Totp: f.code(t, secret, f.now)}))
}

// The attacker holds ana's bearer token but not her TOTP device: they cannot add an
// authenticator of their own, so cannot approve as her.
func TestWebAuthnRPCRegistrationNeedsTOTP(t *testing.T) {
	t.Parallel()
	f := newWebAuthnFixture(t)
	ctx, _ := hilAs("ana")
	mallory := newSoftAuthenticator(t)

	// Not enrolled for TOTP at all: refused (an enrolment comes first).
	_, err := f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{Totp: "123456"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	secret := f.enrol(t, "ana")
	_, err = f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no code: %v", err)
	wrong := "000000"
	if wrong == f.code(t, secret, f.now) {
		wrong = "111111"
	}
	_, err = f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{Totp: wrong})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "wrong code: %v", err)

	// No registration was begun: a response made up for any challenge is refused.
	forged := mallory.register(t, []byte(`{"challenge":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","rp":{"id":"`+waRPID+`"},"user":{"id":"AAAA"}}`))
	_, err = f.s.FinishWebAuthnRegistration(ctx, &hilv1.FinishWebAuthnRegistrationRequest{Credential: string(forged)})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	creds, err := f.s.deps.Store.WebAuthn().ListWebAuthnCredentials(t.Context(), "t1", "ana")
	require.NoError(t, err)
	require.Empty(t, creds)
	_, err = f.s.BeginWebAuthnApproval(ctx, &hilv1.BeginWebAuthnApprovalRequest{ProposalId: f.coord.p.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "no authenticator registered: %v", err)

	// A code, once used, cannot begin a second registration.
	code := f.code(t, secret, f.now)
	_, err = f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{Totp: code})
	require.NoError(t, err)
	_, err = f.s.BeginWebAuthnRegistration(ctx, &hilv1.BeginWebAuthnRegistrationRequest{Totp: code})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "replayed code: %v", err)
	require.Zero(t, f.coord.recorded())
}

func TestWebAuthnRPCBeginApprovalRefusals(t *testing.T) {
	t.Parallel()
	f := newWebAuthnFixture(t)
	secret := f.enrol(t, "agent-7") // the proposer
	a := newSoftAuthenticator(t)
	f.registerWebAuthn(t, "agent-7", secret, a)
	ctx, _ := hilAs("agent-7")
	_, err := f.s.BeginWebAuthnApproval(ctx, &hilv1.BeginWebAuthnApprovalRequest{ProposalId: f.coord.p.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "the proposer: %v", err)

	ana := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "ana", TenantID: "t2", Roles: []string{auth.RoleApprover}})
	_, err = f.s.BeginWebAuthnApproval(ana, &hilv1.BeginWebAuthnApprovalRequest{ProposalId: f.coord.p.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant's: %v", err)

	require.Equal(t, codes.InvalidArgument, status.Code(validateBeginWebAuthnApproval(&hilv1.BeginWebAuthnApprovalRequest{})))
	require.Equal(t, codes.InvalidArgument, status.Code(validateFinishWebAuthnRegistration(&hilv1.FinishWebAuthnRegistrationRequest{})))
	big := make([]byte, MaxWebAuthnResponse+1)
	require.Equal(t, codes.InvalidArgument, status.Code(validateApprove(&hilv1.ApproveRequest{ProposalId: "p", Decision: hilv1.ApprovalDecision_approve,
		Mfa: &hilv1.MFAProof{Webauthn: string(big)}})))
}

// The new RPCs list the approver role only, like Approve and EnrollMFA (admin keeps
// its meaning in internal/auth: every tenant role of its tenant).
func TestWebAuthnRPCPolicy(t *testing.T) {
	t.Parallel()
	f := newHILFixture(t, false, nil)
	def := f.s.Definition()
	for _, m := range []string{"BeginWebAuthnRegistration", "FinishWebAuthnRegistration", "BeginWebAuthnApproval"} {
		full := "/" + hilv1.HILService_ServiceDesc.ServiceName + "/" + m
		require.Equal(t, []string{auth.RoleApprover}, def.Policy[full], m)
		require.NotNil(t, def.Validators[full], m)
	}
}
