package negotiator

import (
	"context"
	"errors"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
)

// ProposalSource reads the manifest of a proposal to negotiate.
type ProposalSource interface {
	// GetManifest returns the proposal's manifest and digest (lower-case hex
	// SHA256 of its canonical JSON, the coordinator's manifest_sha256). An
	// unknown proposal of the tenant, or another tenant's, is an error
	// matching ErrProposalNotFound or a gRPC NOT_FOUND status.
	GetManifest(ctx context.Context, tenantID, proposalID string) (manifest *typesv1.Manifest, digest string, err error)
}

// ErrProposalNotFound: the tenant has no such proposal.
var ErrProposalNotFound = errors.New("negotiator: proposal not found")

// ProposalSourceFunc adapts a function to ProposalSource.
type ProposalSourceFunc func(ctx context.Context, tenantID, proposalID string) (*typesv1.Manifest, string, error)

// GetManifest implements ProposalSource.
func (f ProposalSourceFunc) GetManifest(ctx context.Context, tenantID, proposalID string) (*typesv1.Manifest, string, error) {
	return f(ctx, tenantID, proposalID)
}
