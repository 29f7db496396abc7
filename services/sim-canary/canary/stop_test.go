package canary

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/store"
)

// rolloutCoordinator is the coordinator as a rollout sees it: it records the waves made
// and undone (the other methods are not called).
type rolloutCoordinator struct {
	coordinatorv1.CoordinatorServiceClient
	mu        sync.Mutex
	enacted   [][]string
	rollbacks int
}

func (c *rolloutCoordinator) GetProposal(context.Context, *coordinatorv1.GetProposalRequest, ...grpc.CallOption) (*coordinatorv1.GetProposalResponse, error) {
	return &coordinatorv1.GetProposalResponse{Proposal: &coordinatorv1.Proposal{Id: "01JAAAAAAAAAAAAAAAAAAAAAAA", TenantId: "t1",
		PreStateSha256: "pre", Manifest: &typesv1.Manifest{Action: "scale", Target: "svc", Regions: []string{"eu-west", "us-east"}}}}, nil
}

func (c *rolloutCoordinator) EnactCanaryStage(_ context.Context, in *coordinatorv1.EnactCanaryStageRequest, _ ...grpc.CallOption) (*coordinatorv1.EnactCanaryStageResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enacted = append(c.enacted, in.GetRegions())
	return &coordinatorv1.EnactCanaryStageResponse{StagePreStateSha256: "a", StagePostStateSha256: "b", PreStateSha256: "pre"}, nil
}

func (c *rolloutCoordinator) RollbackCanaryRun(context.Context, *coordinatorv1.RollbackCanaryRunRequest, ...grpc.CallOption) (*coordinatorv1.RollbackCanaryRunResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rollbacks++
	return &coordinatorv1.RollbackCanaryRunResponse{RestoredStateSha256: "pre", PreStateSha256: "pre"}, nil
}

type rolloutAuditor struct {
	auditorv1.AuditorServiceClient
	mu     sync.Mutex
	events []string
}

func (a *rolloutAuditor) AppendEntry(_ context.Context, in *auditorv1.AppendEntryRequest, _ ...grpc.CallOption) (*auditorv1.AppendEntryResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, in.GetEvent())
	return &auditorv1.AppendEntryResponse{}, nil
}

// The emergency stop halts a RUNNING rollout whose wave is still settling: the runner
// stops (no second wave is ever made), every wave is rolled back, the run is STOPPED
// and the stop audited.
func TestStopHaltsARunningRollout(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	coord, aud := &rolloutCoordinator{}, &rolloutAuditor{}
	base := around(100, 0.05, 20)
	_, err = New(Deps{Store: st, Coordinator: coord, Negotiator: nil, Scorer: nil, Auditor: aud,
		Metrics: fixedSeries{"eu-west", base, base}, Settle: time.Hour,
		As: func(ctx context.Context, _ string) context.Context { return ctx }})
	require.Error(t, err, "every peer is required")
	s, err := New(Deps{Store: st, Coordinator: coord, Negotiator: noNegotiator{}, Scorer: noScorer{}, Auditor: aud,
		Metrics: fixedSeries{"eu-west", base, base}, Settle: time.Hour,
		As: func(ctx context.Context, _ string) context.Context { return ctx }})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "ana", TenantID: "t1", Roles: []string{auth.RoleProposer}})
	resp, err := s.RunCanary(ctx, &canaryv1.RunCanaryRequest{ProposalId: "01JAAAAAAAAAAAAAAAAAAAAAAA"})
	require.NoError(t, err)
	run := resp.GetRun()
	require.Equal(t, stateRunning, run.GetState())

	stopped, err := s.StopCanary(ctx, &canaryv1.StopCanaryRequest{Id: run.GetId(), Reason: "pager"})
	require.NoError(t, err)
	require.Equal(t, stateStopped, stopped.GetRun().GetState())
	require.Contains(t, stopped.GetRun().GetReason(), "emergency stop: pager (by ana)")
	require.Equal(t, stageRolledBack, stopped.GetRun().GetStages()[0].GetState())
	require.Equal(t, stagePending, stopped.GetRun().GetStages()[1].GetState())
	require.Equal(t, "pre", stopped.GetRun().GetFinalStateSha256())

	coord.mu.Lock()
	require.Equal(t, [][]string{{"eu-west"}}, coord.enacted, "the second wave was never made")
	require.Equal(t, 1, coord.rollbacks)
	coord.mu.Unlock()
	aud.mu.Lock()
	require.Equal(t, []string{"canary.stopped"}, aud.events)
	aud.mu.Unlock()

	// Stored as STOPPED; a second stop changes nothing; another tenant sees nothing.
	got, err := s.GetCanaryResult(ctx, &canaryv1.GetCanaryResultRequest{Id: run.GetId()})
	require.NoError(t, err)
	require.Equal(t, stateStopped, got.GetRun().GetState())
	again, err := s.StopCanary(ctx, &canaryv1.StopCanaryRequest{Id: run.GetId()})
	require.NoError(t, err)
	require.Equal(t, stateStopped, again.GetRun().GetState())
	require.Equal(t, 1, coord.rollbacks)
	other := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "bo", TenantID: "t2", Roles: []string{auth.RoleProposer}})
	_, err = s.StopCanary(other, &canaryv1.StopCanaryRequest{Id: run.GetId()})
	require.Error(t, err)
}

type noNegotiator struct{ negotiatorClient }
type noScorer struct{ scorerClient }

type (
	negotiatorClient = negotiatorv1.NegotiatorServiceClient
	scorerClient     = scorerv1.ScorerServiceClient
)
