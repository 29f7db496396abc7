package app

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/store"
)

// proposalsOf is a coordinator that answers GetProposal with what get returns and
// records the authorization it was called with.
type proposalsOf struct {
	coordinatorv1.CoordinatorServiceClient // only GetProposal is called
	get                                    func(id string) (*coordinatorv1.Proposal, error)
	auth                                   []string
}

func (c *proposalsOf) GetProposal(ctx context.Context, req *coordinatorv1.GetProposalRequest, _ ...grpc.CallOption) (*coordinatorv1.GetProposalResponse, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	c.auth = md.Get("authorization")
	p, err := c.get(req.GetId())
	return &coordinatorv1.GetProposalResponse{Proposal: p}, err
}

// The auditor's export reads a decision record as the service identity of the
// caller's tenant, and never hands back another tenant's record.
func TestDecisionRecordsStayInTheCallersTenant(t *testing.T) {
	t.Parallel()
	coord := &proposalsOf{get: func(id string) (*coordinatorv1.Proposal, error) {
		switch id {
		case "p-a":
			return &coordinatorv1.Proposal{Id: id, TenantId: "tenant-a", Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED}, nil
		case "p-b":
			return &coordinatorv1.Proposal{Id: id, TenantId: "tenant-b"}, nil
		}
		return nil, status.Error(codes.NotFound, "proposal not found")
	}}
	var minted []string
	records := decisionRecords(coord, identity{func(tenant string) (string, error) {
		minted = append(minted, tenant)
		return "svc-" + tenant, nil
	}})
	ctx := context.Background()

	d, err := records(ctx, "tenant-a", "p-a")
	require.NoError(t, err)
	require.Equal(t, "tenant-a", d.TenantID)
	require.Equal(t, "ENACTED", d.Status)
	require.Equal(t, []string{"Bearer svc-tenant-a"}, coord.auth, "called as the service identity of the caller's tenant")

	_, err = records(ctx, "tenant-a", "p-b")
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's record is not found, even if the coordinator answered with it")

	_, err = records(ctx, "tenant-a", "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Equal(t, []string{"tenant-a", "tenant-a", "tenant-a"}, minted, "tokens are only ever minted for the caller's tenant")
}
