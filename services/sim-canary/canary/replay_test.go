package canary

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
)

// fakeCoordinator answers ListDecisionRecords with records, whatever the tenant.
type fakeCoordinator struct {
	coordinatorv1.CoordinatorServiceClient
	records []*coordinatorv1.DecisionRecord
	asked   *coordinatorv1.ListDecisionRecordsRequest
}

func (c *fakeCoordinator) ListDecisionRecords(_ context.Context, in *coordinatorv1.ListDecisionRecordsRequest, _ ...grpc.CallOption) (*coordinatorv1.ListDecisionRecordsResponse, error) {
	c.asked = in
	return &coordinatorv1.ListDecisionRecordsResponse{Records: c.records}, nil
}

// fakeAuditor answers GetAuditTrail; the replay never asks for a whole decision export
// (ExportDecision is for auditors and admins, not the service identity).
type fakeAuditor struct {
	auditorv1.AuditorServiceClient
	calls, exports int
}

func (a *fakeAuditor) GetAuditTrail(context.Context, *auditorv1.GetAuditTrailRequest, ...grpc.CallOption) (*auditorv1.GetAuditTrailResponse, error) {
	a.calls++
	return nil, status.Error(codes.NotFound, "no trail")
}

func (a *fakeAuditor) ExportDecision(context.Context, *auditorv1.ExportDecisionRequest, ...grpc.CallOption) (*auditorv1.ExportDecisionResponse, error) {
	a.exports++
	return nil, status.Error(codes.PermissionDenied, "the service role may not export")
}

type fakeNegotiator struct {
	negotiatorv1.NegotiatorServiceClient
}

func caller(tenant string) context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "ana", TenantID: tenant, Roles: []string{auth.RoleAuditor}})
}

func TestReplayKeepsToTheCallersTenantAndReportsWhatDoesNotVerify(t *testing.T) {
	mine := &coordinatorv1.Proposal{Id: "01JTESTAAAAAAAAAAAAAAAAAAA", TenantId: "t1", Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SCORED}
	theirs := &coordinatorv1.Proposal{Id: "01JTESTBBBBBBBBBBBBBBBBBBB", TenantId: "t2", Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SCORED}
	coord, aud := &fakeCoordinator{records: []*coordinatorv1.DecisionRecord{{Proposal: mine}, {Proposal: theirs}}}, &fakeAuditor{}
	s := (&Service{}).WithReplay(ReplayDeps{
		Coordinator: coord, Auditor: aud, Negotiator: fakeNegotiator{},
		AsService: func(ctx context.Context, _ string) context.Context { return ctx },
		Keys:      func() (bundle.Keys, error) { return bundle.Keys{}, nil },
	})
	out, err := s.Replay(caller("t1"), &canaryv1.ReplayRequest{ProposalIds: []string{mine.GetId(), theirs.GetId()}})
	require.NoError(t, err)
	require.Equal(t, []string{mine.GetId(), theirs.GetId()}, coord.asked.GetIds())
	require.Len(t, out.GetResults(), 1, "a record of another tenant, whatever a peer answers, is not replayed")
	require.Equal(t, []string{theirs.GetId()}, out.GetNotFound())
	require.False(t, out.GetResults()[0].GetVerified())
	require.Contains(t, out.GetResults()[0].GetVerificationError(), "decision export")
	require.Contains(t, out.GetResults()[0].GetVerificationError(), "no trail", "the trail is read with GetAuditTrail")
	require.Equal(t, 1, aud.calls)
	require.Zero(t, aud.exports, "the replay reads the trail, never a whole export")
	require.Contains(t, out.GetTable(), theirs.GetId()+": not found")

	// Without keys nothing is exported, and every record says why it is not verified.
	s.replay.Keys = func() (bundle.Keys, error) { return bundle.Keys{}, errors.New("audit checkpoint keys: missing") }
	aud.calls = 0
	out, err = s.Replay(caller("t1"), &canaryv1.ReplayRequest{ProposalIds: []string{mine.GetId()}})
	require.NoError(t, err)
	require.Zero(t, aud.calls)
	require.Contains(t, out.GetResults()[0].GetVerificationError(), "no keys to verify with")

	// A bad request is refused before any peer is asked.
	coord.asked = nil
	_, err = s.Replay(caller("t1"), &canaryv1.ReplayRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Nil(t, coord.asked)
}
