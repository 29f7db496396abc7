package bundle_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/signing"
)

// apvApproverKey is alice's own cosign-format (ECDSA P-256) key, made in memory.
var apvApproverKey = sync.OnceValues(func() (signing.Signer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return signing.NewECDSASigner(priv)
})

func apvApprover(t testing.TB) signing.Signer {
	t.Helper()
	s, err := apvApproverKey()
	require.NoError(t, err)
	return s
}

// apvApproverRing trusts alice's key only.
func apvApproverRing(t testing.TB) *signing.Keyring {
	t.Helper()
	ring := &signing.Keyring{}
	_, err := ring.Add(apvApprover(t).PublicKeyPEM())
	require.NoError(t, err)
	return ring
}

// apvSign signs a as the coordinator does (with the trusted cosign key, or with s).
func apvSign(t testing.TB, a *typesv1.Approval, s signing.Signer) *typesv1.Approval {
	t.Helper()
	if s == nil {
		s = signer(t)
	}
	out, err := bundle.SignApproval(s, a)
	require.NoError(t, err)
	return out
}

// apvSignedApprovals is two votes on the manifest digest, both approving: alice with
// TOTP and her own signature over the digest, bob by WebAuthn without one.
func apvSignedApprovals(t testing.TB, digest string) []*typesv1.Approval {
	t.Helper()
	own, err := apvApprover(t).Sign([]byte(digest))
	require.NoError(t, err)
	alice := &typesv1.Approval{ProposalId: "p1", TenantId: "t1", ManifestSha256: digest, Approver: "alice",
		Roles: []string{"approver"}, Groups: []string{"sre"}, Decision: bundle.DecisionApprove, Reason: "capacity reviewed",
		MfaMethod: "totp", MfaVerified: true, ApproverSignature: own, ApproverKeyId: apvApprover(t).KeyID(),
		DecidedAt: timestamppb.New(now.Add(-2 * time.Minute)), Channel: "page"}
	bob := &typesv1.Approval{ProposalId: "p1", TenantId: "t1", ManifestSha256: digest, Approver: "bob",
		Roles: []string{"approver"}, Decision: bundle.DecisionApprove, Reason: "ok",
		MfaMethod: "webauthn", MfaVerified: true, DecidedAt: timestamppb.New(now.Add(-time.Minute)), Channel: "slack"}
	return []*typesv1.Approval{apvSign(t, alice, nil), apvSign(t, bob, nil)}
}

func apvStep(t *testing.T, rep *bundle.Report, name string) string {
	t.Helper()
	for _, s := range rep.Steps {
		if s.Name == name {
			return s.Detail
		}
	}
	t.Fatalf("no step %q in %v", name, rep.Steps)
	return ""
}

func TestApvExportVerifies(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	require.Len(t, x.GetSignedApprovals(), 2)
	rep, err := bundle.VerifyExport(x, keys)
	require.NoError(t, err)
	alice := apvStep(t, rep, "approval 0 (alice)")
	require.Contains(t, alice, "approve at 2025-06-01T11:58:00Z via page, totp verified")
	require.Contains(t, alice, "coordinator signature by trusted key "+signer(t).KeyID()[:12])
	require.Contains(t, alice, "approver signature over manifest_sha256 by trusted approver key "+apvApprover(t).KeyID()[:12])
	require.Contains(t, apvStep(t, rep, "approval 1 (bob)"), "unsigned by the approver")
	require.Contains(t, apvStep(t, rep, bundle.PartApprovals), "2 signed votes (2 approve, 0 deny)")

	// Without approver keys alice's own signature is reported as not checked.
	k := keys
	k.ApproverKeys = nil
	rep, err = bundle.VerifyExport(x, k)
	require.NoError(t, err)
	require.Contains(t, apvStep(t, rep, "approval 0 (alice)"), "approver signature not checked (no -approver-keys)")

	// A deny needs no listing; no approvals at all verifies too.
	c := proto.CloneOf(x)
	c.SignedApprovals = append(c.SignedApprovals, apvSign(t, &typesv1.Approval{ProposalId: "p1", TenantId: "t1",
		ManifestSha256: x.GetManifestSha256(), Approver: "carol", Decision: bundle.DecisionDeny, MfaMethod: bundle.MFANone,
		DecidedAt: timestamppb.New(now), Channel: "api"}, nil))
	rep, err = bundle.VerifyExport(c, keys)
	require.NoError(t, err)
	require.Contains(t, apvStep(t, rep, "approval 2 (carol)"), "deny at 2025-06-01T12:00:00Z via api, no second factor")
	require.Contains(t, apvStep(t, rep, bundle.PartApprovals), "3 signed votes (2 approve, 1 deny)")
	c = proto.CloneOf(x)
	c.SignedApprovals, c.Approvals = nil, nil
	_, err = bundle.VerifyExport(c, keys)
	require.NoError(t, err)

	// VerifyApproval alone.
	want := bundle.Expect{TenantID: "t1", ProposalID: "p1", ManifestSHA256: x.GetManifestSha256()}
	detail, err := bundle.VerifyApproval(x.GetSignedApprovals()[0], keys.Cosign, keys.ApproverKeys, want)
	require.NoError(t, err)
	require.Contains(t, detail, "approver signature over manifest_sha256")
	_, err = bundle.VerifyApproval(x.GetSignedApprovals()[0], keys.Cosign, keys.ApproverKeys, bundle.Expect{ProposalID: "p2"})
	requirePart(t, err, "approval (alice)")
	_, err = bundle.VerifyApproval(nil, keys.Cosign, nil, want)
	requirePart(t, err, "approval")
	require.ErrorIs(t, err, bundle.ErrMissing)
}

// TestApvChangedApprovalFails: a change to any field of a signed approval breaks the
// coordinator's signature, and verification names that approval.
func TestApvChangedApprovalFails(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	other := canonical.SHA256Hex([]byte("another manifest"))
	for name, edit := range map[string]func(a *typesv1.Approval){
		"decision":        func(a *typesv1.Approval) { a.Decision = bundle.DecisionDeny },
		"approver":        func(a *typesv1.Approval) { a.Approver = "mallory" },
		"reason":          func(a *typesv1.Approval) { a.Reason = "looks fine" },
		"decided_at":      func(a *typesv1.Approval) { a.DecidedAt = timestamppb.New(now.Add(time.Hour)) },
		"manifest_sha256": func(a *typesv1.Approval) { a.ManifestSha256 = other },
		"mfa_verified":    func(a *typesv1.Approval) { a.MfaVerified = false },
		"mfa_method":      func(a *typesv1.Approval) { a.MfaMethod = bundle.MFANone },
		"roles":           func(a *typesv1.Approval) { a.Roles = append(a.Roles, "admin") },
		"channel":         func(a *typesv1.Approval) { a.Channel = "api" },
		"tenant_id":       func(a *typesv1.Approval) { a.TenantId = "t2" },
		"signature gone":  func(a *typesv1.Approval) { a.Signature = nil },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := proto.CloneOf(x)
			edit(c.SignedApprovals[1])
			_, err := bundle.VerifyExport(c, keys)
			be := homesPartError(t, err, "approval 1 (")
			if name == "signature gone" {
				require.ErrorIs(t, err, bundle.ErrMissing)
				return
			}
			require.Contains(t, be.Detail, "does not verify with trusted key", "%v", err)
		})
	}
}

// TestApvSignedButWrongFails: records the trusted key signed that are still wrong:
// about another manifest, proposal or tenant, a decision that is neither, MFA that did
// not verify.
func TestApvSignedButWrongFails(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	for name, tc := range map[string]struct {
		edit   func(a *typesv1.Approval)
		detail string
	}{
		"another manifest": {func(a *typesv1.Approval) { a.ManifestSha256 = canonical.SHA256Hex([]byte("x")) }, "the approver saw another manifest"},
		"another proposal": {func(a *typesv1.Approval) { a.ProposalId = "p2" }, `proposal "p2"`},
		"another tenant":   {func(a *typesv1.Approval) { a.TenantId = "t2" }, `tenant "t2"`},
		"no decision":      {func(a *typesv1.Approval) { a.Decision = "maybe" }, `decision "maybe"`},
		"mfa not verified": {func(a *typesv1.Approval) { a.MfaVerified = false }, `second factor ("webauthn") did not verify`},
		"no mfa method":    {func(a *typesv1.Approval) { a.MfaMethod, a.MfaVerified = "", false }, "did not verify"},
		"no decided_at":    {func(a *typesv1.Approval) { a.DecidedAt = nil }, "no decided_at"},
		"no approver":      {func(a *typesv1.Approval) { a.Approver = "" }, "names no approver"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := proto.CloneOf(x)
			a := proto.CloneOf(c.SignedApprovals[1])
			tc.edit(a)
			c.SignedApprovals[1] = apvSign(t, a, nil)
			_, err := bundle.VerifyExport(c, keys)
			be := homesPartError(t, err, "approval 1 (")
			require.Contains(t, be.Detail, tc.detail)
		})
	}

	// MFA method "none" needs no verified factor (simulation).
	c := proto.CloneOf(x)
	a := proto.CloneOf(c.SignedApprovals[1])
	a.MfaMethod, a.MfaVerified = bundle.MFANone, false
	c.SignedApprovals[1] = apvSign(t, a, nil)
	rep, err := bundle.VerifyExport(c, keys)
	require.NoError(t, err)
	require.Contains(t, apvStep(t, rep, "approval 1 (bob)"), "no second factor (mfa_method none)")
}

// TestApvListingMustMatch: the approvers an export lists are exactly those with a
// signed approving vote.
func TestApvListingMustMatch(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	for name, tc := range map[string]struct {
		edit   func(x *auditorv1.ExportDecisionResponse)
		detail string
	}{
		"a listed approver's record dropped": {func(x *auditorv1.ExportDecisionResponse) {
			x.SignedApprovals = x.SignedApprovals[:1]
		}, `"bob" is listed as an approver, but no signed approval`},
		"an approver listed without a record": {func(x *auditorv1.ExportDecisionResponse) {
			x.Approvals = append(x.Approvals, "mallory")
		}, `"mallory" is listed`},
		"a signed approval not listed": {func(x *auditorv1.ExportDecisionResponse) {
			x.Approvals = x.Approvals[:1]
		}, "approval 1 (bob) approves, but the export does not list bob"},
		"listed, but the signed vote denies": {func(x *auditorv1.ExportDecisionResponse) {
			a := proto.CloneOf(x.SignedApprovals[1])
			a.Decision = bundle.DecisionDeny
			x.SignedApprovals[1] = apvSign(t, a, nil)
		}, `"bob" is listed`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := proto.CloneOf(x)
			tc.edit(c)
			_, err := bundle.VerifyExport(c, keys)
			be := homesPartError(t, err, bundle.PartApprovals)
			require.Equal(t, bundle.PartApprovals, be.Part)
			require.Contains(t, be.Detail, tc.detail)
		})
	}
}

// TestApvKeys: the record is verified with the trusted keys only, never with the key
// it carries; the approver's signature with the approver keys, over this digest.
func TestApvKeys(t *testing.T) {
	t.Parallel()
	x, keys := decisionExport(t)
	stranger, err := signing.GenerateEd25519()
	require.NoError(t, err)

	// Signed by an untrusted key that the record carries (key_id and public_key).
	c := proto.CloneOf(x)
	c.SignedApprovals[0] = apvSign(t, c.SignedApprovals[0], stranger)
	require.Equal(t, string(stranger.PublicKeyPEM()), c.SignedApprovals[0].GetSignature().GetPublicKey())
	_, err = bundle.VerifyExport(c, keys)
	be := homesPartError(t, err, "approval 0 (alice)")
	require.Contains(t, be.Detail, "not a trusted key")

	// Signed by the stranger, but naming the trusted key.
	c.SignedApprovals[0].Signature.KeyId = signer(t).KeyID()
	c.SignedApprovals[0].Signature.PublicKey = string(signer(t).PublicKeyPEM())
	_, err = bundle.VerifyExport(c, keys)
	be = homesPartError(t, err, "approval 0 (alice)")
	require.Contains(t, be.Detail, "does not verify with trusted key")

	// No coordinator keys at all.
	_, err = bundle.VerifyApproval(x.GetSignedApprovals()[0], nil, keys.ApproverKeys, bundle.Expect{})
	requirePart(t, err, "approval (alice)")

	// The approver's signature: by another key under alice's key id, over another
	// digest, by a key the verifier does not trust, or without a key id. The
	// coordinator re-signs each, so only the approver signature is wrong.
	ownOverOther, err := apvApprover(t).Sign([]byte(canonical.SHA256Hex([]byte("another manifest"))))
	require.NoError(t, err)
	strangerOwn, err := stranger.Sign([]byte(x.GetManifestSha256()))
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		edit   func(a *typesv1.Approval)
		detail string
	}{
		"another key": {func(a *typesv1.Approval) { a.ApproverSignature = strangerOwn },
			"approver signature does not verify over manifest_sha256"},
		"another digest": {func(a *typesv1.Approval) { a.ApproverSignature = ownOverOther },
			"approver signature does not verify over manifest_sha256"},
		"an untrusted approver key": {func(a *typesv1.Approval) { a.ApproverSignature, a.ApproverKeyId = strangerOwn, stranger.KeyID() },
			"not a trusted approver key"},
		"no approver key id": {func(a *typesv1.Approval) { a.ApproverKeyId = "" }, "names no approver_key_id"},
		"not base64":         {func(a *typesv1.Approval) { a.ApproverSignature = "%%%" }, "approver signature: "},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := proto.CloneOf(x)
			a := proto.CloneOf(c.SignedApprovals[0])
			tc.edit(a)
			c.SignedApprovals[0] = apvSign(t, a, nil)
			_, err := bundle.VerifyExport(c, keys)
			be := homesPartError(t, err, "approval 0 (alice)")
			require.Contains(t, be.Detail, tc.detail)

			// Without approver keys the same record is reported, not failed.
			k := keys
			k.ApproverKeys = nil
			rep, err := bundle.VerifyExport(c, k)
			require.NoError(t, err)
			require.Contains(t, apvStep(t, rep, "approval 0 (alice)"), "not checked (no -approver-keys)")
		})
	}
}

// TestApvFromProposal: the export carries the proposal's signed approvals.
func TestApvFromProposal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	signed := apvSignedApprovals(t, f.digest)
	p := &coordinatorv1.Proposal{Id: "p1", TenantId: "t1", Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED,
		Manifest: f.manifest, ManifestSha256: f.digest, Approvers: []string{"alice", "bob"}, Approvals: signed}
	d := bundle.FromProposal(p)
	require.Equal(t, []string{"alice", "bob"}, d.Approvals)
	require.Len(t, d.SignedApprovals, 2)
	require.True(t, proto.Equal(signed[0], d.SignedApprovals[0]))
	require.True(t, proto.Equal(signed[1], d.SignedApprovals[1]))

	// Assemble puts them in the export as signed_approvals, beside the names.
	x, _ := decisionExport(t)
	require.Equal(t, []string{"alice", "bob"}, x.GetApprovals())
	require.Len(t, x.GetSignedApprovals(), 2)
	for i, a := range x.GetSignedApprovals() {
		require.Equal(t, signed[i].GetApprover(), a.GetApprover())
		require.Equal(t, signer(t).KeyID(), a.GetSignature().GetKeyId())
	}
}
