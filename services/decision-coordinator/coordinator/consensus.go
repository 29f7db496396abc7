package coordinator

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/store"
)

// trust is what the coordinator verifies consensus bundles with: its keyring (its own
// signing key and trusted_keys) and the region key registry.
func (s *Service) trust() bundle.Trust {
	return bundle.Trust{Keys: s.deps.TrustedKeys, Regions: s.deps.RegionKeys, RequireManifestSignature: s.deps.RequireSignature}
}

// consensusBundle packages an agreed negotiation (P2): the submitted manifest and its
// verified signature, the negotiator's quorum certificate and the final agreed
// manifest, signed with the fabric's cosign key. It checks the bundle's content first
// (the certificate against the region key registry, its digest against the stored
// manifest's), so the coordinator never signs a certificate that does not verify; the
// error says what failed. The checked bundle is remembered as verified.
func (s *Service) consensusBundle(p *store.Proposal, d *coordinatorv1.Proposal, n *negotiatorv1.Negotiation) (*bundle.Signed, error) {
	if s.deps.Signer == nil {
		return nil, errors.New("no signing key is configured for consensus bundles")
	}
	m, err := manifestpkg.Decode(p.Manifest)
	if err != nil {
		return nil, fmt.Errorf("stored manifest: %w", err)
	}
	c, err := bundle.Build(bundle.Input{
		TenantID: p.TenantID, ProposalID: p.ID, Manifest: m, ManifestSignature: d.GetManifestSignature(),
		Certificate: n.GetQuorumCertificate(), AgreedManifest: n.GetFinalManifest(), CreatedAt: s.deps.Now(),
	})
	if err != nil {
		return nil, err
	}
	if err := c.Check(s.trust(), bundle.Expect{TenantID: p.TenantID, ProposalID: p.ID, ManifestSHA256: p.ManifestSHA256}); err != nil {
		return nil, err
	}
	sb, err := bundle.Seal(c, s.deps.Signer)
	if err != nil {
		return nil, err
	}
	s.verified.Add(verifiedKeyOf(sb), c)
	return sb, nil
}

// verifyConsensus is the enactment check of P2: the proposal's consensus bundle must
// be signed by a trusted key, its quorum certificate must verify against the region
// key registry (not only the keys it carries), prove AGREED for this proposal's
// manifest digest, and its agreed manifest must be the one about to be enacted. Outside
// simulation a missing bundle is refused too; in simulation a missing bundle is
// allowed (proposals agreed before bundles existed, or without a signing key) but a
// present one must verify. A refusal is FAILED_PRECONDITION naming what failed, before
// anything changes.
//
// The cryptographic checks run once per distinct bundle (its exact bytes and
// signature) and trust: a bundle this coordinator sealed or already verified is only
// matched against this proposal and the manifest to enact.
func (s *Service) verifyConsensus(p *store.Proposal, d *coordinatorv1.Proposal) error {
	refuse := func(err error) error {
		return status.Errorf(codes.FailedPrecondition, "enactment of proposal %s refused: the consensus bundle does not verify (P2): %v", p.ID, err)
	}
	sb, err := storedBundle(p)
	if err != nil {
		return refuse(err)
	}
	legacy := d.GetConsensusBundle() // recorded inside the decision record before migration 00007
	if sb == nil && legacy == nil {
		if !s.deps.RequireConsensusBundle {
			return nil
		}
		why := "none was recorded when the regions agreed"
		if e := d.GetConsensusError(); e != "" {
			why += ": " + e
		}
		return status.Errorf(codes.FailedPrecondition, "enactment of proposal %s refused: no consensus bundle (P2): %s", p.ID, why)
	}
	_, m, err := change(p, d)
	if err != nil {
		return err
	}
	want := bundle.Expect{TenantID: p.TenantID, ProposalID: p.ID, ManifestSHA256: p.ManifestSHA256, Enact: m}
	if sb == nil {
		if _, err := bundle.Verify(legacy, s.trust(), want); err != nil {
			return refuse(err)
		}
		return nil
	}
	key := verifiedKeyOf(sb)
	if c, ok := s.verified.Get(key); ok && canonical.SHA256Hex(sb.Payload) == sb.SHA256 {
		if err := c.Matches(want); err != nil {
			return refuse(err)
		}
		return nil
	}
	c, err := bundle.VerifySigned(sb, s.trust(), want)
	if err != nil {
		return refuse(err)
	}
	s.verified.Add(key, c)
	return nil
}

// verifiedKey identifies a signed bundle: its digest and its signature. A cache hit
// also needs the stored payload to hash to the digest (verifyConsensus checks).
type verifiedKey struct{ sha256, keyID, signature string }

func verifiedKeyOf(sb *bundle.Signed) verifiedKey {
	return verifiedKey{sb.SHA256, sb.Signature.GetKeyId(), sb.Signature.GetSignature()}
}

// storedBundle decodes p's stored consensus bundle; nil when none was recorded.
// Decoded bundles are cached per proposal and reused while the stored bytes are the
// same (the bundle is written once, when the regions agree).
func storedBundle(p *store.Proposal) (*bundle.Signed, error) {
	e, err := decodedBundle(p)
	if e == nil || err != nil {
		return nil, err
	}
	return e.signed, nil
}

// apiBundle is p's consensus bundle in its API form: the stored one, or the one in a
// decision record written before migration 00007. The result is shared and must not
// be modified.
func apiBundle(p *store.Proposal, d *coordinatorv1.Proposal) (*typesv1.ConsensusBundle, error) {
	e, err := decodedBundle(p)
	if err != nil || e == nil {
		return d.GetConsensusBundle(), err
	}
	e.apiOnce.Do(func() { e.api, e.apiErr = e.signed.Proto() })
	return e.api, e.apiErr
}

// bundleSHA256 is the digest of p's consensus bundle, "" when there is none (or it
// cannot be read).
func bundleSHA256(p *store.Proposal, d *coordinatorv1.Proposal) string {
	sb, err := storedBundle(p)
	switch {
	case err != nil:
		return ""
	case sb != nil:
		return sb.SHA256
	}
	return d.GetConsensusBundle().GetSha256()
}

// decodedEntry is a stored bundle, decoded; its API form (a Struct, several times the
// bytes) is made when a response first needs it.
type decodedEntry struct {
	raw     []byte
	signed  *bundle.Signed
	apiOnce sync.Once
	api     *typesv1.ConsensusBundle
	apiErr  error
}

// decodedBundles holds the bundles of the proposals in flight; a bundle is a few KiB
// (at most bundle.MaxConsensusBytes), and an entry is reused only while the stored
// bytes are the same.
var decodedBundles = mustLRU[string, *decodedEntry](1024)

func decodedBundle(p *store.Proposal) (*decodedEntry, error) {
	if len(p.ConsensusBundle) == 0 {
		return nil, nil
	}
	if e, ok := decodedBundles.Get(p.ID); ok && bytes.Equal(e.raw, p.ConsensusBundle) {
		return e, nil
	}
	sb, err := bundle.DecodeSigned(p.ConsensusBundle)
	if err != nil {
		return nil, err
	}
	return rememberBundle(p.ID, p.ConsensusBundle, sb), nil
}

// rememberBundle caches a bundle stored (or about to be stored) as raw.
func rememberBundle(proposalID string, raw []byte, sb *bundle.Signed) *decodedEntry {
	e := &decodedEntry{raw: bytes.Clone(raw), signed: sb}
	decodedBundles.Add(proposalID, e)
	return e
}
