package bundle

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/signing"
)

// ExportFormat is the "format" of every decision export.
const ExportFormat = "decision-fabric/decision-export/v1"

// MaxExportBytes bounds a decision export (1000 audit entries with proofs and
// summaries, two manifests and a bundle).
const MaxExportBytes = 32 << 20

// Parts of an export named in errors (besides the consensus bundle's).
const (
	PartExport     = "export"
	PartCheckpoint = "checkpoint"
	PartAuditTrail = "audit trail"
	PartStatus     = "status"
)

// Audit events and summary members an export's trail must hold to tie the decision
// to the log: the submission records the manifest's digest, the agreement the
// consensus bundle's.
const (
	EventSubmitted               = auditlog.EventProposalSubmitted
	SummaryManifestSHA256        = "manifest_sha256"
	SummaryConsensusBundleSHA256 = "consensus_bundle_sha256"
	SummaryStatus                = "status"
)

// Decision is the decision record an export is made from.
type Decision struct {
	TenantID, ProposalID, Status string
	Manifest                     *typesv1.Manifest
	ManifestSHA256               string
	ManifestSignature            *typesv1.ManifestSignature
	ConsensusBundle              *typesv1.ConsensusBundle
	// Approvals names the approvers who approved.
	Approvals []string
	// SignedApprovals is every human vote, each signed by the coordinator.
	SignedApprovals []*typesv1.Approval
}

// FromProposal is the decision record of a proposal as the coordinator's API returns
// it (GetProposal): the auditor's export reads it there, not in the coordinator's tables.
// Status is the stored form ("ENACTED"), as the audit trail records it.
func FromProposal(p *coordinatorv1.Proposal) *Decision {
	return &Decision{
		TenantID: p.GetTenantId(), ProposalID: p.GetId(),
		Status:   strings.TrimPrefix(p.GetStatus().String(), "PROPOSAL_STATUS_"),
		Manifest: p.GetManifest(), ManifestSHA256: p.GetManifestSha256(),
		ManifestSignature: p.GetManifestSignature(), ConsensusBundle: p.GetConsensusBundle(),
		Approvals: p.GetApprovers(), SignedApprovals: p.GetApprovals(),
	}
}

// Assemble makes the export of a decision from its record and its audit trail (as
// auditlog.Log.Trail returns it), with v the log's verifier (for the public keys
// carried for pinning).
func Assemble(d *Decision, tr *auditlog.Trail, v *auditlog.Verifier, now time.Time) *auditorv1.ExportDecisionResponse {
	return FromTrail(d, TrailResponse(tr, v), now)
}

// TrailResponse is a proposal's audit trail as GetAuditTrail answers it: the entries
// with their inclusion proofs in one signed checkpoint, with v the log's verifier (for
// the public keys carried for pinning). An export carries exactly this.
func TrailResponse(tr *auditlog.Trail, v *auditlog.Verifier) *auditorv1.GetAuditTrailResponse {
	out := &auditorv1.GetAuditTrailResponse{Checkpoint: auditlog.CheckpointProto(tr.Checkpoint, v)}
	for i, e := range tr.Entries {
		out.Entries = append(out.Entries, auditlog.EntryProto(e, tr.Proofs[i]))
	}
	return out
}

// FromTrail makes the export of a decision from its record and its audit trail as
// GetAuditTrail answers it. A reader that may read both (the sim-canary's replay, as
// the fabric's service identity) assembles the same document the auditor's
// ExportDecision would give, and verifies it the same way (VerifyExport), without the
// export permission, which is the tenant's auditors' and admins' alone.
func FromTrail(d *Decision, trail *auditorv1.GetAuditTrailResponse, now time.Time) *auditorv1.ExportDecisionResponse {
	return &auditorv1.ExportDecisionResponse{
		Format: ExportFormat, ProposalId: d.ProposalID, TenantId: d.TenantID, Status: d.Status,
		ExportedAt: timestamppb.New(now), Manifest: d.Manifest, ManifestSha256: d.ManifestSHA256,
		ManifestSignature: d.ManifestSignature, ConsensusBundle: d.ConsensusBundle, Approvals: d.Approvals,
		SignedApprovals: d.SignedApprovals,
		Checkpoint:      trail.GetCheckpoint(),
		Entries:         trail.GetEntries(),
	}
}

// ParseExport decodes a decision export (the JSON body of GET
// /audit/{proposal_id}/bundle) strictly: unknown members are errors, at most
// MaxExportBytes.
func ParseExport(raw []byte) (*auditorv1.ExportDecisionResponse, error) {
	if len(raw) > MaxExportBytes {
		return nil, fail(PartExport, "larger than %d bytes", MaxExportBytes)
	}
	x := &auditorv1.ExportDecisionResponse{}
	if err := protojson.Unmarshal(raw, x); err != nil {
		return nil, fail(PartExport, "not a decision export: %v", err)
	}
	return x, nil
}

// Keys are what an offline verifier trusts: public keys it obtained out of band,
// never the copies an export carries.
type Keys struct {
	// Cosign verifies the manifest's and the consensus bundle's signatures (the
	// fabric's cosign.pub and any trusted_keys).
	Cosign *signing.Keyring
	// Regions is the region key registry (regionkeys.Registry.Trusted).
	Regions map[string][]byte
	// Audit verifies the checkpoint's Ed25519 note and ML-DSA-65 signature.
	Audit *auditlog.Verifier
	// ApproverKeys verifies the approvers' own signatures over manifest_sha256 (by
	// approver_key_id); nil: they are reported as not checked. The approval records
	// themselves are verified with Cosign (the coordinator signs them).
	ApproverKeys *signing.Keyring
	// AllowUnsignedManifest accepts a manifest submitted without a signature
	// (possible in simulation only); the check is then reported as skipped.
	AllowUnsignedManifest bool
	// AllowNoConsensus accepts the export of a decision that never reached an
	// agreement (status SUBMITTED, NEGOTIATING, REJECTED or EXPIRED) without a
	// consensus bundle: the bundle and agreement checks are then reported as skipped,
	// every other check still runs. A replay reads such decisions too.
	AllowNoConsensus bool
}

// Step is one check that passed.
type Step struct {
	Name   string
	Detail string
}

// Report lists the checks that passed, in order.
type Report struct {
	Steps []Step
}

func (r *Report) ok(name, format string, a ...any) {
	r.Steps = append(r.Steps, Step{Name: name, Detail: fmt.Sprintf(format, a...)})
}

// VerifyExport checks a decision export offline with keys alone, in order: the
// format; the manifest hashes to manifest_sha256 and its signature is by a trusted
// cosign key; the consensus bundle (Verify: its signature, the quorum certificate
// against the region registry, the agreed manifest) is about this decision and this
// manifest; every signed approval (VerifyApproval: the coordinator's signature by a
// trusted cosign key, about this decision and manifest, MFA, and the approver's own
// signature when keys.ApproverKeys is given) and that the approvers listed are
// exactly those whose signed vote approves; the checkpoint's two signatures, its
// origin (the tenant's log) and the size and root it states; every audit entry belongs to the decision, hashes to its
// entry_hash, links to the entry before it when that one is exported too, and is
// included in the checkpoint (RFC 6962 proof); and the trail records the manifest's
// digest at submission and the consensus bundle's at agreement, and its last
// transition is to the export's status. It returns the checks that passed and the
// first failure, an *Error naming the part. The keys carried beside the checkpoint
// and in the approvals are reported, not trusted.
func VerifyExport(x *auditorv1.ExportDecisionResponse, keys Keys) (*Report, error) {
	r := &Report{}
	if x.GetFormat() != ExportFormat {
		return r, fail(PartExport, "format %q: want %q", x.GetFormat(), ExportFormat)
	}
	if x.GetTenantId() == "" || x.GetProposalId() == "" {
		return r, fail(PartExport, "tenant_id and proposal_id are required")
	}
	r.ok(PartExport, "proposal %s of tenant %s", x.GetProposalId(), x.GetTenantId())

	if x.GetManifest() == nil {
		return r, missing(PartManifest, "no manifest")
	}
	manifest, sum, err := manifestpkg.Canonical(x.GetManifest())
	if err != nil {
		return r, fail(PartManifest, "%v", err)
	}
	if sum != x.GetManifestSha256() {
		return r, fail(PartManifest, "hashes to %s, not manifest_sha256 %s: the manifest was changed", short(sum), short(x.GetManifestSha256()))
	}
	r.ok(PartManifest, "sha256 %s", x.GetManifestSha256())

	switch sig := x.GetManifestSignature(); {
	case sig.GetSignature() == "" && keys.AllowUnsignedManifest:
		r.ok(PartManifestSignature, "SKIPPED: the manifest was submitted unsigned (allowed by -allow-unsigned-manifest)")
	default:
		if err := verifySignature(PartManifestSignature, keys.Cosign, sig, manifest); err != nil {
			return r, err
		}
		r.ok(PartManifestSignature, "cosign signature by trusted key %s", short(keyID(sig)))
	}

	b := x.GetConsensusBundle()
	noConsensus := b == nil && keys.AllowNoConsensus && NeverAgreed(x.GetStatus())
	if noConsensus {
		r.ok(PartBundle, "SKIPPED: the decision never agreed (%s), so it has no consensus bundle", x.GetStatus())
	} else {
		c, err := Verify(b, Trust{Keys: keys.Cosign, Regions: keys.Regions, RequireManifestSignature: !keys.AllowUnsignedManifest},
			Expect{TenantID: x.GetTenantId(), ProposalID: x.GetProposalId(), ManifestSHA256: x.GetManifestSha256()})
		if err != nil {
			return r, err
		}
		if !sameSignature(c.ManifestSignature, x.GetManifestSignature()) {
			return r, fail(PartBundle, "its manifest_signature is not the export's manifest_signature")
		}
		r.ok(PartBundleSignature, "sha256 %s, cosign signature by trusted key %s", b.GetSha256(), short(keyID(b.GetSignature())))
		qc := c.QuorumCertificate
		r.ok(PartCertificate, "%s by %s rule in round %d: %d signed votes of %d regions verify against the region key registry",
			qc.Outcome, qc.Rule, qc.Round, len(qc.Votes), len(qc.RegionKeys))
		r.ok(PartAgreedManifest, "sha256 %s", c.AgreedManifestSHA256)
	}
	if err := verifyApprovals(x, keys, r); err != nil {
		return r, err
	}

	cp, err := verifyCheckpoint(x, keys.Audit)
	if err != nil {
		return r, err
	}
	r.ok(PartCheckpoint, "%s, size %d, root %s: Ed25519 note and ML-DSA-65 signatures verify", cp.Origin, cp.Size, hex.EncodeToString(cp.Root))

	if err := verifyEntries(x, cp, r); err != nil {
		return r, err
	}
	if err := verifyLinks(x, !noConsensus); err != nil {
		return r, err
	}
	if noConsensus {
		r.ok(PartAuditTrail, "records the manifest's sha256 at submission (the decision never agreed)")
	} else {
		r.ok(PartAuditTrail, "records the manifest's sha256 at submission and the consensus bundle's at agreement")
	}
	if err := verifyStatus(x); err != nil {
		return r, err
	}
	r.ok(PartStatus, "%s, the status the last audited transition records", x.GetStatus())
	return r, nil
}

// NeverAgreed reports whether a decision in status (the stored form, "REJECTED") never
// reached an agreement of the regions, so has no consensus bundle to verify.
func NeverAgreed(status string) bool {
	switch status {
	case "SUBMITTED", "NEGOTIATING", "REJECTED", "EXPIRED":
		return true
	}
	return false
}

func keyID(sig *typesv1.ManifestSignature) string {
	if sig.GetKeyId() != "" {
		return sig.GetKeyId()
	}
	id, _ := signing.KeyIDFromPEM([]byte(sig.GetPublicKey()))
	return id
}

func sameSignature(a *Signature, b *typesv1.ManifestSignature) bool {
	if a == nil {
		return b.GetSignature() == ""
	}
	return a.Signature == b.GetSignature() && keyID(&typesv1.ManifestSignature{KeyId: a.KeyID, PublicKey: a.PublicKey}) == keyID(b)
}

// verifyCheckpoint checks both signatures of the export's checkpoint with v and that
// the fields stated beside the note are the signed ones.
func verifyCheckpoint(x *auditorv1.ExportDecisionResponse, v *auditlog.Verifier) (*auditlog.Checkpoint, error) {
	pc := x.GetCheckpoint()
	if pc == nil {
		return nil, missing(PartCheckpoint, "no checkpoint")
	}
	if v == nil {
		return nil, fail(PartCheckpoint, "no audit checkpoint keys to verify with")
	}
	sig, err := base64.StdEncoding.DecodeString(pc.GetMldsa65Signature())
	if err != nil {
		return nil, fail(PartCheckpoint, "mldsa65_signature is not base64")
	}
	cp, err := v.Verify([]byte(pc.GetNote()), sig)
	if err != nil {
		return nil, fail(PartCheckpoint, "%v", err)
	}
	switch {
	case cp.Origin != auditlog.Origin(x.GetTenantId()):
		return nil, fail(PartCheckpoint, "signs log %q, not tenant %q's log", cp.Origin, x.GetTenantId())
	case uint64(pc.GetSize()) != cp.Size || pc.GetRootHash() != hex.EncodeToString(cp.Root) || pc.GetOrigin() != cp.Origin:
		return nil, fail(PartCheckpoint, "the size, root_hash or origin stated beside the note differ from the signed ones")
	}
	return cp, nil
}

// verifyEntries checks every exported audit entry against the signed checkpoint.
func verifyEntries(x *auditorv1.ExportDecisionResponse, cp *auditlog.Checkpoint, r *Report) error {
	entries := x.GetEntries()
	if len(entries) == 0 {
		return missing(PartAuditTrail, "no audit entries")
	}
	var prev *auditorv1.AuditEntry
	for i, pe := range entries {
		part := fmt.Sprintf("audit entry %d (index %d, %s)", i, pe.GetIndex(), pe.GetEvent())
		switch {
		case pe.GetTenantId() != x.GetTenantId() || pe.GetProposalId() != x.GetProposalId():
			return fail(part, "belongs to tenant %q proposal %q, not this decision", pe.GetTenantId(), pe.GetProposalId())
		case pe.GetIndex() < 0 || uint64(pe.GetIndex()) >= cp.Size:
			return fail(part, "index %d is outside the checkpoint's %d entries", pe.GetIndex(), cp.Size)
		case prev != nil && pe.GetIndex() <= prev.GetIndex():
			return fail(part, "entries are not in log order")
		case pe.GetCreatedAt() == nil:
			return fail(part, "no created_at")
		}
		e := auditlog.EntryFromProto(pe)
		h, err := auditlog.EntryHash(e)
		if err != nil {
			return fail(part, "%v", err)
		}
		if h != pe.GetEntryHash() {
			return fail(part, "its fields hash to %s, not its entry_hash %s: the entry was changed", short(h), short(pe.GetEntryHash()))
		}
		if prev != nil && pe.GetIndex() == prev.GetIndex()+1 && pe.GetPrevHash() != prev.GetEntryHash() {
			return fail(part, "prev_hash is not the entry_hash of entry %d before it", prev.GetIndex())
		}
		leaf, err := auditlog.LeafHash(pe.GetEntryHash())
		if err != nil {
			return fail(part, "%v", err)
		}
		path := make([][]byte, 0, len(pe.GetInclusionProof()))
		for _, node := range pe.GetInclusionProof() {
			b, err := hex.DecodeString(node)
			if err != nil || len(b) != 32 {
				return fail(part, "inclusion_proof holds %q, not a hex SHA-256", node)
			}
			path = append(path, b)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(pe.GetIndex()), cp.Size, leaf, path, cp.Root); err != nil {
			return fail(part, "not included in the signed checkpoint: %v", err)
		}
		r.ok(part, "entry_hash %s recomputed; included in the checkpoint", short(pe.GetEntryHash()))
		prev = pe
	}
	return nil
}

// verifyStatus checks the export's status against the (verified) trail: every
// transition's entry records the status it moved to, so the last one that records a
// status is the decision's status.
func verifyStatus(x *auditorv1.ExportDecisionResponse) error {
	last := ""
	for _, e := range x.GetEntries() {
		var s map[string]any
		if json.Unmarshal([]byte(e.GetSummary()), &s) != nil {
			continue
		}
		if st, ok := s[SummaryStatus].(string); ok {
			last = st
		}
	}
	switch {
	case last == "":
		return missing(PartStatus, "no audit entry records a status")
	case last != x.GetStatus():
		return fail(PartStatus, "the export says %q, but the last audited transition is to %q", x.GetStatus(), last)
	}
	return nil
}

// verifyLinks checks that the (verified) trail records the manifest and the bundle.
func verifyLinks(x *auditorv1.ExportDecisionResponse, agreement bool) error {
	var submitted, agreed bool
	bundleSum := x.GetConsensusBundle().GetSha256()
	for _, e := range x.GetEntries() {
		var s map[string]any
		if json.Unmarshal([]byte(e.GetSummary()), &s) != nil {
			continue
		}
		if e.GetEvent() == EventSubmitted && s[SummaryManifestSHA256] == x.GetManifestSha256() {
			submitted = true
		}
		if bundleSum != "" && s[SummaryConsensusBundleSHA256] == bundleSum {
			agreed = true
		}
	}
	switch {
	case !submitted:
		return fail(PartAuditTrail, "no %s entry records manifest_sha256 %s", EventSubmitted, short(x.GetManifestSha256()))
	case agreement && !agreed:
		return fail(PartAuditTrail, "no entry records the consensus bundle's sha256 %s", short(bundleSum))
	}
	return nil
}
