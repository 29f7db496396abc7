package coordinator

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/bundle"
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
// error says what failed.
func (s *Service) consensusBundle(p *store.Proposal, d *coordinatorv1.Proposal, n *negotiatorv1.Negotiation) (*typesv1.ConsensusBundle, error) {
	if s.deps.Signer == nil {
		return nil, errors.New("no signing key is configured for consensus bundles")
	}
	m := &typesv1.Manifest{}
	if err := protojson.Unmarshal(p.Manifest, m); err != nil {
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
	return bundle.Sign(c, s.deps.Signer)
}

// verifyConsensus is the enactment check of P2: the proposal's consensus bundle must
// be signed by a trusted key, its quorum certificate must verify against the region
// key registry (not only the keys it carries), prove AGREED for this proposal's
// manifest digest, and its agreed manifest must be the one about to be enacted. Outside
// simulation a missing bundle is refused too; in simulation a missing bundle is
// allowed (proposals agreed before bundles existed, or without a signing key) but a
// present one must verify. A refusal is FAILED_PRECONDITION naming what failed, before
// anything changes.
func (s *Service) verifyConsensus(p *store.Proposal, d *coordinatorv1.Proposal) error {
	b := d.GetConsensusBundle()
	if b == nil {
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
	if _, err := bundle.Verify(b, s.trust(), bundle.Expect{TenantID: p.TenantID, ProposalID: p.ID, ManifestSHA256: p.ManifestSHA256, Enact: m}); err != nil {
		return status.Errorf(codes.FailedPrecondition, "enactment of proposal %s refused: the consensus bundle does not verify (P2): %v", p.ID, err)
	}
	return nil
}

// Decisions reads decision records straight from the store for the decision
// auditor's export (the services share one store). An unknown proposal, or another
// tenant's, is store.ErrNotFound.
func Decisions(st store.Store) func(ctx context.Context, tenantID, proposalID string) (*bundle.Decision, error) {
	return func(ctx context.Context, tenantID, proposalID string) (*bundle.Decision, error) {
		p, err := st.Proposals().Get(ctx, tenantID, proposalID)
		if errors.Is(err, store.ErrInvalid) {
			return nil, fmt.Errorf("%w: %s", store.ErrNotFound, proposalID)
		}
		if err != nil {
			return nil, err
		}
		out, err := toProto(p)
		if err != nil {
			return nil, err
		}
		return &bundle.Decision{
			TenantID: p.TenantID, ProposalID: p.ID, Status: p.Status,
			Manifest: out.GetManifest(), ManifestSHA256: p.ManifestSHA256,
			ManifestSignature: out.GetManifestSignature(), ConsensusBundle: out.GetConsensusBundle(),
			Approvals: out.GetApprovers(),
		}, nil
	}
}
