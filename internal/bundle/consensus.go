// Package bundle holds the two signed documents that carry a decision beyond the
// fabric:
//
//   - the consensus bundle (P2): when the regions agree, the coordinator packages the
//     submitted manifest with its signature, the negotiator's quorum certificate and the
//     final agreed manifest into one JSON document and signs its RFC 8785 canonical JSON
//     with its cosign-format key (Build, Sign). Before every enactment it checks the
//     bundle again (Verify): its signature by a trusted key, the certificate against the
//     region key registry (internal/regionkeys, never only the keys the certificate
//     carries), the certificate's digest against the manifest's SHA256, the outcome
//     AGREED, and the agreed manifest against the one to enact;
//   - the decision export: one self-contained document per decision (the auditor's
//     ExportDecision, GET /audit/{proposal_id}/bundle) that VerifyExport checks offline
//     with the public keys alone: the manifest signature, the consensus bundle and its
//     certificate, each audit entry's hash and inclusion proof, and both checkpoint
//     signatures. `fabric decision verify` is its command line.
//
// Everything parsed here is untrusted input: parsers are strict (unknown members are
// errors) and bounded, and every failure names the part that failed.
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/signing"
)

// ConsensusType is the "type" of every consensus bundle.
const ConsensusType = "decision-fabric/consensus-bundle/v1"

// MaxConsensusBytes bounds a consensus bundle's canonical JSON (two manifests of at
// most 256 KiB of parameters each and a certificate of at most 64 regions fit well).
const MaxConsensusBytes = 4 << 20

var (
	// ErrInvalid: a bundle or export does not verify. Every *Error wraps it.
	ErrInvalid = errors.New("bundle: does not verify")
	// ErrMissing: there is no consensus bundle (or no signature) to verify. Errors
	// for a missing part wrap both ErrMissing and ErrInvalid.
	ErrMissing = errors.New("bundle: missing")
)

// Error is a verification failure: Part names what failed ("consensus bundle
// signature", "quorum certificate", "audit entry 3 (proposal.enacted)", ...), Detail
// says how.
type Error struct {
	Part    string
	Detail  string
	missing bool
}

func (e *Error) Error() string { return e.Part + ": " + e.Detail }

// Unwrap makes errors.Is(err, ErrInvalid) (and ErrMissing for a missing part) hold.
func (e *Error) Unwrap() []error {
	if e.missing {
		return []error{ErrInvalid, ErrMissing}
	}
	return []error{ErrInvalid}
}

func fail(part, format string, a ...any) error {
	return &Error{Part: part, Detail: fmt.Sprintf(format, a...)}
}

func missing(part, format string, a ...any) error {
	return &Error{Part: part, Detail: fmt.Sprintf(format, a...), missing: true}
}

// Parts named in errors.
const (
	PartBundle            = "consensus bundle"
	PartBundleSignature   = "consensus bundle signature"
	PartManifest          = "manifest"
	PartManifestSignature = "manifest signature"
	PartCertificate       = "quorum certificate"
	PartAgreedManifest    = "agreed manifest"
)

// Signature is a cosign-format signature with the key that made it (the JSON form
// of types.v1.ManifestSignature).
type Signature struct {
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
}

// Consensus is the consensus bundle document (types.v1.ConsensusBundle.bundle).
type Consensus struct {
	Type       string `json:"type"`
	TenantID   string `json:"tenant_id"`
	ProposalID string `json:"proposal_id"`
	// Manifest is the submitted manifest's canonical JSON: the bytes its signature covers.
	Manifest          json.RawMessage `json:"manifest"`
	ManifestSHA256    string          `json:"manifest_sha256"`
	ManifestSignature *Signature      `json:"manifest_signature"`
	// QuorumCertificate proves the regions agreed to the manifest (its proposal_digest).
	QuorumCertificate quorum.Certificate `json:"quorum_certificate"`
	// AgreedManifest is the canonical JSON of the manifest the regions agreed to (the
	// submitted one merged with counter-offers): what enactment carries out.
	AgreedManifest       json.RawMessage `json:"agreed_manifest"`
	AgreedManifestSHA256 string          `json:"agreed_manifest_sha256"`
	CreatedAt            string          `json:"created_at"`
}

// Input is what Build packages.
type Input struct {
	TenantID, ProposalID string
	// Manifest is the submitted manifest (as stored).
	Manifest *typesv1.Manifest
	// ManifestSignature is the verified submission signature; nil when unsigned.
	ManifestSignature *typesv1.ManifestSignature
	// Certificate is the negotiator's quorum certificate.
	Certificate *negotiatorv1.QuorumCertificate
	// AgreedManifest is the negotiation's final manifest; nil means the submitted one.
	AgreedManifest *typesv1.Manifest
	CreatedAt      time.Time
}

// Build assembles the consensus bundle of an agreed negotiation. It does not check
// the certificate's signatures (Verify does, and the coordinator runs it before
// signing); it refuses what could never verify: no certificate, a certificate of
// another manifest or outcome.
func Build(in Input) (*Consensus, error) {
	if in.Manifest == nil {
		return nil, missing(PartManifest, "no manifest")
	}
	if in.Certificate == nil {
		return nil, missing(PartCertificate, "the negotiation returned no quorum certificate")
	}
	manifest, sum, err := manifestpkg.Canonical(in.Manifest)
	if err != nil {
		return nil, fmt.Errorf("bundle: manifest: %w", err)
	}
	agreed, agreedSum := manifest, sum
	if in.AgreedManifest != nil {
		if agreed, agreedSum, err = manifestpkg.Canonical(in.AgreedManifest); err != nil {
			return nil, fmt.Errorf("bundle: agreed manifest: %w", err)
		}
	}
	c := &Consensus{
		Type: ConsensusType, TenantID: in.TenantID, ProposalID: in.ProposalID,
		Manifest: manifest, ManifestSHA256: sum,
		QuorumCertificate: quorum.FromProto(in.Certificate),
		AgreedManifest:    agreed, AgreedManifestSHA256: agreedSum,
		CreatedAt: in.CreatedAt.UTC().Format(time.RFC3339Nano),
	}
	if s := in.ManifestSignature; s != nil {
		c.ManifestSignature = &Signature{Signature: s.GetSignature(), KeyID: s.GetKeyId(), PublicKey: s.GetPublicKey()}
	}
	if d := c.QuorumCertificate.ProposalDigest; d != c.ManifestSHA256 {
		return nil, fail(PartCertificate, "proposal_digest %s is not the manifest's sha256 %s", short(d), short(c.ManifestSHA256))
	}
	if o := c.QuorumCertificate.Outcome; o != quorum.OutcomeAgreed {
		return nil, fail(PartCertificate, "outcome %q: want %s", o, quorum.OutcomeAgreed)
	}
	return c, nil
}

// Canonical returns the bundle's RFC 8785 canonical JSON, the bytes its signature
// covers.
func (c *Consensus) Canonical() ([]byte, error) {
	cc := *c
	if cc.QuorumCertificate.Votes == nil {
		cc.QuorumCertificate.Votes = []quorum.Vote{}
	}
	if cc.QuorumCertificate.RegionKeys == nil {
		cc.QuorumCertificate.RegionKeys = []quorum.RegionKey{}
	}
	return canonical.Marshal(cc)
}

// Signed is a signed consensus bundle as the coordinator stores it: the exact bytes
// that were signed, their digest and the signature. It is what Seal makes and
// VerifySigned checks; Proto gives its API form.
type Signed struct {
	// Payload is the bundle document's RFC 8785 canonical JSON: the signed bytes.
	Payload []byte
	// SHA256 is the lower-case hex SHA256 of Payload.
	SHA256 string
	// Signature is the cosign-format signature over Payload, with its key.
	Signature *typesv1.ManifestSignature
}

// Seal signs the bundle's canonical JSON with s (the coordinator's cosign key).
func Seal(c *Consensus, s signing.Signer) (*Signed, error) {
	payload, err := c.Canonical()
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	sig, err := s.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("bundle: sign: %w", err)
	}
	return &Signed{
		Payload: payload, SHA256: canonical.SHA256Hex(payload),
		Signature: &typesv1.ManifestSignature{Signature: sig, KeyId: s.KeyID(), PublicKey: string(s.PublicKeyPEM())},
	}, nil
}

// Sign is Seal, returning the bundle in its API form.
func Sign(c *Consensus, s signing.Signer) (*typesv1.ConsensusBundle, error) {
	sb, err := Seal(c, s)
	if err != nil {
		return nil, err
	}
	return sb.Proto()
}

// Proto returns the bundle in its API form (types.v1.ConsensusBundle). Its document
// gives back the signed bytes exactly (Payload(b) == s.Payload): canonical JSON holds
// only IEEE 754 double numbers, which a Struct represents exactly.
func (s *Signed) Proto() (*typesv1.ConsensusBundle, error) {
	doc := &structpb.Struct{}
	if err := protojson.Unmarshal(s.Payload, doc); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &typesv1.ConsensusBundle{Bundle: doc, Sha256: s.SHA256, Signature: s.Signature}, nil
}

// signedJSON is the JSON form of a Signed: the protojson form of
// types.v1.ConsensusBundle, with the signed bytes as its "bundle" member.
type signedJSON struct {
	Bundle    json.RawMessage `json:"bundle"`
	SHA256    string          `json:"sha256"`
	Signature *Signature      `json:"signature"`
}

// Encode returns the bundle's JSON form for storage: the protojson form of its API
// form (types.v1.ConsensusBundle), whose "bundle" member is the signed bytes
// themselves, so DecodeSigned gets them back without re-encoding.
func (s *Signed) Encode() ([]byte, error) {
	out := signedJSON{Bundle: s.Payload, SHA256: s.SHA256}
	if g := s.Signature; g != nil {
		out.Signature = &Signature{Signature: g.GetSignature(), KeyID: g.GetKeyId(), PublicKey: g.GetPublicKey()}
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("bundle: encode: %w", err)
	}
	return raw, nil
}

// DecodeSigned parses the JSON form of a signed bundle (Encode's output, or the
// protojson form of types.v1.ConsensusBundle) strictly and bounded. The document is
// canonicalised, so Payload is the bytes the signature must cover whatever its
// spacing; it checks the form only (VerifySigned checks what it proves).
func DecodeSigned(raw []byte) (*Signed, error) {
	var in signedJSON
	if err := decodeStrict(raw, 2*MaxConsensusBytes, "a signed consensus bundle", &in); err != nil {
		return nil, err
	}
	if len(in.Bundle) == 0 || bytes.Equal(in.Bundle, []byte("null")) {
		return nil, missing(PartBundle, "no bundle document")
	}
	payload, err := canonical.JSON(in.Bundle)
	if err != nil {
		return nil, fail(PartBundle, "%v", err)
	}
	out := &Signed{Payload: payload, SHA256: in.SHA256}
	if g := in.Signature; g != nil {
		out.Signature = &typesv1.ManifestSignature{Signature: g.Signature, KeyId: g.KeyID, PublicKey: g.PublicKey}
	}
	return out, nil
}

// Payload returns the canonical JSON of a bundle in its API form: the bytes its
// signature covers (and what `cosign verify-blob` is given).
func Payload(b *typesv1.ConsensusBundle) ([]byte, error) {
	if b.GetBundle() == nil {
		return nil, missing(PartBundle, "no bundle document")
	}
	payload, err := canonical.Proto(b.GetBundle())
	if err != nil {
		return nil, fail(PartBundle, "%v", err)
	}
	return payload, nil
}

// Parse decodes a consensus bundle's JSON strictly: exactly the documented members,
// one JSON value, at most MaxConsensusBytes, and both manifests must be manifests.
// It checks the form only; Verify checks what it proves.
func Parse(payload []byte) (*Consensus, error) {
	var c Consensus
	if err := decodeStrict(payload, MaxConsensusBytes, "a consensus bundle", &c); err != nil {
		return nil, err
	}
	if c.Type != ConsensusType {
		return nil, fail(PartBundle, "type %q: want %q", c.Type, ConsensusType)
	}
	for _, m := range []struct {
		part string
		raw  json.RawMessage
	}{{PartManifest, c.Manifest}, {PartAgreedManifest, c.AgreedManifest}} {
		if _, err := manifestpkg.Decode(m.raw); err != nil {
			return nil, fail(m.part, "not a manifest: %v", err)
		}
	}
	return &c, nil
}

// decodeStrict decodes raw, at most limit bytes, into v: one JSON value with only
// the members v knows. A failure is a PartBundle error saying raw is not what.
func decodeStrict(raw []byte, limit int, what string, v any) error {
	if len(raw) > limit {
		return fail(PartBundle, "larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(PartBundle, "not %s: %v", what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail(PartBundle, "trailing data after the bundle")
	}
	return nil
}

// Trust is what a verifier trusts.
type Trust struct {
	// Keys are the trusted cosign public keys: the coordinator's signing key (for the
	// bundle) and the keys manifests may be signed with. Required.
	Keys *signing.Keyring
	// Regions is the region key registry (regionkeys.Registry.Trusted): the only
	// source of the keys a quorum certificate's votes are checked with. Required.
	Regions map[string][]byte
	// RequireManifestSignature refuses a bundle whose manifest is unsigned
	// (production: SIMULATION_MODE=false).
	RequireManifestSignature bool
}

// Expect is what the bundle must be about. Empty fields are not compared.
type Expect struct {
	TenantID, ProposalID string
	// ManifestSHA256 is the stored proposal's manifest digest.
	ManifestSHA256 string
	// Enact is the manifest about to be enacted: it must be the agreed one.
	Enact *typesv1.Manifest
}

// Verify checks a consensus bundle in its API form and returns its document. In
// order: it is present and signed; its sha256 is its content's; the signature is by a
// trusted key; the document parses; it is about want; the manifest hashes to
// manifest_sha256 and its signature (when present, and required when
// trust.RequireManifestSignature) is by a trusted key; the quorum certificate verifies
// against trust.Regions (quorum.Verify), proves AGREED, and its digest is the
// manifest's; the agreed manifest hashes to agreed_manifest_sha256 and is the one to
// enact. The first failure is returned as an *Error naming the part.
func Verify(b *typesv1.ConsensusBundle, trust Trust, want Expect) (*Consensus, error) {
	if b == nil {
		return nil, missing(PartBundle, "none was recorded")
	}
	payload, err := Payload(b)
	if err != nil {
		return nil, err
	}
	return VerifySigned(&Signed{Payload: payload, SHA256: b.GetSha256(), Signature: b.GetSignature()}, trust, want)
}

// VerifySigned is Verify of a bundle in its stored form.
func VerifySigned(s *Signed, trust Trust, want Expect) (*Consensus, error) {
	if s == nil {
		return nil, missing(PartBundle, "none was recorded")
	}
	if sum := canonical.SHA256Hex(s.Payload); s.SHA256 != sum {
		return nil, fail(PartBundle, "sha256 %s is not its content's %s: the bundle was changed", short(s.SHA256), short(sum))
	}
	if err := verifySignature(PartBundleSignature, trust.Keys, s.Signature, s.Payload); err != nil {
		return nil, err
	}
	c, err := Parse(s.Payload)
	if err != nil {
		return nil, err
	}
	if err := c.Check(trust, want); err != nil {
		return nil, err
	}
	return c, nil
}

// Check verifies a bundle's content, everything Verify checks after the bundle's own
// signature: what it is about, the manifest and its signature, the quorum certificate
// against the region registry, the agreed manifest. The coordinator runs it before
// signing a bundle, so it never signs a certificate that does not verify.
func (c *Consensus) Check(trust Trust, want Expect) error {
	if err := c.about(want); err != nil {
		return err
	}
	manifest, err := canonical.JSON(c.Manifest)
	if err != nil {
		return fail(PartManifest, "%v", err)
	}
	if sum := canonical.SHA256Hex(manifest); sum != c.ManifestSHA256 {
		return fail(PartManifest, "hashes to %s, not the bundle's manifest_sha256 %s", short(sum), short(c.ManifestSHA256))
	}
	if err := c.ofManifest(want); err != nil {
		return err
	}
	switch s := c.ManifestSignature; {
	case s == nil && trust.RequireManifestSignature:
		return missing(PartManifestSignature, "the manifest was not signed (P2)")
	case s != nil:
		sig := &typesv1.ManifestSignature{Signature: s.Signature, KeyId: s.KeyID, PublicKey: s.PublicKey}
		if err := verifySignature(PartManifestSignature, trust.Keys, sig, manifest); err != nil {
			return err
		}
	}
	qc := c.QuorumCertificate
	if err := quorum.Verify(qc, trust.Regions); err != nil {
		return fail(PartCertificate, "%v", err)
	}
	if qc.ProposalDigest != c.ManifestSHA256 {
		return fail(PartCertificate, "proposal_digest %s is not the manifest's sha256 %s", short(qc.ProposalDigest), short(c.ManifestSHA256))
	}
	if qc.Outcome != quorum.OutcomeAgreed {
		return fail(PartCertificate, "outcome %s: the regions did not agree", qc.Outcome)
	}
	agreed, err := canonical.JSON(c.AgreedManifest)
	if err != nil {
		return fail(PartAgreedManifest, "%v", err)
	}
	if sum := canonical.SHA256Hex(agreed); sum != c.AgreedManifestSHA256 {
		return fail(PartAgreedManifest, "hashes to %s, not the bundle's agreed_manifest_sha256 %s", short(sum), short(c.AgreedManifestSHA256))
	}
	return c.enacts(want)
}

// Matches checks what want asks of a bundle whose content has already been checked
// (Check or VerifySigned passed for the same bytes and trust): the tenant, the
// proposal, the manifest digest and the manifest to enact, with Check's errors.
func (c *Consensus) Matches(want Expect) error {
	if err := c.about(want); err != nil {
		return err
	}
	if err := c.ofManifest(want); err != nil {
		return err
	}
	return c.enacts(want)
}

func (c *Consensus) about(want Expect) error {
	switch {
	case want.TenantID != "" && c.TenantID != want.TenantID:
		return fail(PartBundle, "made for tenant %q, not %q", c.TenantID, want.TenantID)
	case want.ProposalID != "" && c.ProposalID != want.ProposalID:
		return fail(PartBundle, "made for proposal %q, not %q", c.ProposalID, want.ProposalID)
	}
	return nil
}

func (c *Consensus) ofManifest(want Expect) error {
	if want.ManifestSHA256 != "" && c.ManifestSHA256 != want.ManifestSHA256 {
		return fail(PartManifest, "the bundle's manifest %s is not the proposal's %s", short(c.ManifestSHA256), short(want.ManifestSHA256))
	}
	return nil
}

// enacts checks that want.Enact, when set, is the agreed manifest (whose canonical
// JSON Check has verified against agreed_manifest_sha256).
func (c *Consensus) enacts(want Expect) error {
	if want.Enact == nil {
		return nil
	}
	_, sum, err := manifestpkg.Canonical(want.Enact)
	if err != nil {
		return fail(PartAgreedManifest, "%v", err)
	}
	if sum != c.AgreedManifestSHA256 {
		return fail(PartAgreedManifest, "the manifest to enact (%s) is not the one the regions agreed to (%s)",
			short(sum), short(c.AgreedManifestSHA256))
	}
	return nil
}

// verifySignature checks a cosign-format signature over payload with a trusted key:
// the one named by key_id, or by public_key when key_id is empty. The public key in
// the signature only names the key; trust comes from keys.
func verifySignature(part string, keys *signing.Keyring, sig *typesv1.ManifestSignature, payload []byte) error {
	if sig.GetSignature() == "" {
		return missing(part, "not signed")
	}
	if keys == nil {
		return fail(part, "no trusted keys to verify with")
	}
	id := sig.GetKeyId()
	if id == "" && sig.GetPublicKey() != "" {
		var err error
		if id, err = signing.KeyIDFromPEM([]byte(sig.GetPublicKey())); err != nil {
			return fail(part, "public_key: %v", err)
		}
	}
	if id == "" {
		return fail(part, "names no key (key_id or public_key)")
	}
	if pub := sig.GetPublicKey(); pub != "" {
		if got, err := signing.KeyIDFromPEM([]byte(pub)); err != nil || got != id {
			return fail(part, "public_key is not the key %s named by key_id", short(id))
		}
	}
	err := keys.Verify(id, payload, sig.GetSignature())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, signing.ErrUnknownKey):
		return fail(part, "made with key %s, which is not a trusted key", short(id))
	case errors.Is(err, signing.ErrBadSignature):
		return fail(part, "does not verify with trusted key %s: the signed content was changed, or another key signed it", short(id))
	default:
		return fail(part, "%v", err)
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
