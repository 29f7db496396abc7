package bundle

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/signing"
)

// PartApproval names an approval in errors ("approval 2 (alice)").
const PartApproval = "approval"

// PartApprovals names the check that the export's approvers are its signed approvals.
const PartApprovals = "approvals"

// Approval decisions and the MFA method of a vote recorded without a second factor.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
	MFANone         = "none"
)

// ApprovalPayload is the bytes an approval's signature covers: the RFC 8785 canonical
// JSON of the record (protojson) with its signature left out.
func ApprovalPayload(a *typesv1.Approval) ([]byte, error) {
	c := proto.CloneOf(a)
	c.Signature = nil
	b, err := canonical.Proto(c)
	if err != nil {
		return nil, fmt.Errorf("approval payload: %w", err)
	}
	return b, nil
}

// SignApproval signs a with s and returns a signed copy (a is not modified).
func SignApproval(s signing.Signer, a *typesv1.Approval) (*typesv1.Approval, error) {
	payload, err := ApprovalPayload(a)
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign approval: %w", err)
	}
	out := proto.CloneOf(a)
	out.Signature = &typesv1.ManifestSignature{Signature: sig, KeyId: s.KeyID(), PublicKey: string(s.PublicKeyPEM())}
	return out, nil
}

// ApprovalPart is the name of the i-th approval of an export in errors and reports:
// "approval 2 (alice)".
func ApprovalPart(i int, a *typesv1.Approval) string {
	return fmt.Sprintf("%s %d (%s)", PartApproval, i, approverName(a))
}

// approverName is the approver as printed: quoted when it holds anything but
// printable characters (it is untrusted input, and reaches a terminal).
func approverName(a *typesv1.Approval) string {
	n := a.GetApprover()
	if n == "" {
		return "no approver"
	}
	if q := strconv.Quote(n); q[1:len(q)-1] != n {
		return q
	}
	return n
}

// VerifyApproval checks one signed human vote against what it must be about, with
// keys the coordinator's trusted cosign keys (the record's signature is verified with
// them, never with the public key the record carries) and approverKeys the
// approvers' trusted public keys (nil: approver signatures are not checked). It
// checks, in order: the coordinator's signature over ApprovalPayload; tenant_id,
// proposal_id and manifest_sha256 are want's (empty fields of want are not compared,
// but the record's must be set); an approver and decided_at are recorded; the
// decision is "approve" or "deny"; the second factor verified unless mfa_method is
// "none"; and, when approver_signature is set and approverKeys given, that it is the
// approver's signature (key approver_key_id) over the ASCII hex manifest_sha256.
//
// It returns what was checked, in words (saying when the approver signed nothing or
// their signature was not checked), or an *Error naming the approval ("approval
// (alice)"; VerifyExport names its position too).
func VerifyApproval(a *typesv1.Approval, keys, approverKeys *signing.Keyring, want Expect) (string, error) {
	return verifyApproval(fmt.Sprintf("%s (%s)", PartApproval, approverName(a)), a, keys, approverKeys, want)
}

func verifyApproval(part string, a *typesv1.Approval, keys, approverKeys *signing.Keyring, want Expect) (string, error) {
	if a == nil {
		return "", missing(part, "no approval record")
	}
	payload, err := ApprovalPayload(a)
	if err != nil {
		return "", fail(part, "%v", err)
	}
	if err := verifySignature(part, keys, a.GetSignature(), payload); err != nil {
		return "", err
	}
	switch {
	case a.GetTenantId() == "" || a.GetProposalId() == "" || a.GetManifestSha256() == "":
		return "", fail(part, "tenant_id, proposal_id and manifest_sha256 are required")
	case want.TenantID != "" && a.GetTenantId() != want.TenantID:
		return "", fail(part, "is a vote of tenant %q, not %q", a.GetTenantId(), want.TenantID)
	case want.ProposalID != "" && a.GetProposalId() != want.ProposalID:
		return "", fail(part, "is a vote on proposal %q, not %q", a.GetProposalId(), want.ProposalID)
	case want.ManifestSHA256 != "" && a.GetManifestSha256() != want.ManifestSHA256:
		return "", fail(part, "approves manifest %s, not manifest_sha256 %s: the approver saw another manifest",
			short(a.GetManifestSha256()), short(want.ManifestSHA256))
	case a.GetApprover() == "":
		return "", fail(part, "names no approver")
	case a.GetDecidedAt() == nil:
		return "", fail(part, "no decided_at")
	case a.GetDecision() != DecisionApprove && a.GetDecision() != DecisionDeny:
		return "", fail(part, "decision %q: want %q or %q", a.GetDecision(), DecisionApprove, DecisionDeny)
	case a.GetMfaMethod() != MFANone && !a.GetMfaVerified():
		return "", fail(part, "the second factor (%q) did not verify", a.GetMfaMethod())
	}
	mfa := "no second factor (mfa_method none)"
	if a.GetMfaMethod() != MFANone {
		mfa = a.GetMfaMethod() + " verified"
	}
	detail := fmt.Sprintf("%s at %s via %s, %s; coordinator signature by trusted key %s",
		a.GetDecision(), a.GetDecidedAt().AsTime().UTC().Format("2006-01-02T15:04:05Z"), a.GetChannel(), mfa, short(keyID(a.GetSignature())))

	switch {
	case a.GetApproverSignature() == "":
		return detail + "; unsigned by the approver", nil
	case approverKeys == nil:
		return detail + "; approver signature not checked (no -approver-keys)", nil
	case a.GetApproverKeyId() == "":
		return "", fail(part, "approver_signature names no approver_key_id")
	}
	err = approverKeys.Verify(a.GetApproverKeyId(), []byte(a.GetManifestSha256()), a.GetApproverSignature())
	switch {
	case err == nil:
		return detail + fmt.Sprintf("; approver signature over manifest_sha256 by trusted approver key %s", short(a.GetApproverKeyId())), nil
	case errors.Is(err, signing.ErrUnknownKey):
		return "", fail(part, "approver signature made with key %s, which is not a trusted approver key", short(a.GetApproverKeyId()))
	case errors.Is(err, signing.ErrBadSignature):
		return "", fail(part, "approver signature does not verify over manifest_sha256 %s with approver key %s",
			short(a.GetManifestSha256()), short(a.GetApproverKeyId()))
	default:
		return "", fail(part, "approver signature: %v", err)
	}
}

// verifyApprovals checks every signed approval of an export (each is reported) and
// that the approvers the export lists as having approved are exactly those with a
// signed "approve" vote.
func verifyApprovals(x *auditorv1.ExportDecisionResponse, keys Keys, r *Report) error {
	want := Expect{TenantID: x.GetTenantId(), ProposalID: x.GetProposalId(), ManifestSHA256: x.GetManifestSha256()}
	signed := map[string]bool{}
	var approve, deny int
	for i, a := range x.GetSignedApprovals() {
		part := ApprovalPart(i, a)
		detail, err := verifyApproval(part, a, keys.Cosign, keys.ApproverKeys, want)
		if err != nil {
			return err
		}
		r.ok(part, "%s", detail)
		if a.GetDecision() == DecisionApprove {
			signed[a.GetApprover()] = true
			approve++
		} else {
			deny++
		}
	}
	listed := map[string]bool{}
	for _, name := range x.GetApprovals() {
		listed[name] = true
		if !signed[name] {
			return fail(PartApprovals, "%s is listed as an approver, but no signed approval of theirs approves", strconv.Quote(name))
		}
	}
	for i, a := range x.GetSignedApprovals() {
		if a.GetDecision() == DecisionApprove && !listed[a.GetApprover()] {
			return fail(PartApprovals, "%s approves, but the export does not list %s among its approvals", ApprovalPart(i, a), approverName(a))
		}
	}
	names := make([]string, 0, len(listed))
	for n := range listed {
		names = append(names, n)
	}
	slices.Sort(names)
	r.ok(PartApprovals, "%d signed votes (%d approve, %d deny); the approvers listed %v are those of the signed approvals",
		len(x.GetSignedApprovals()), approve, deny, names)
	return nil
}
