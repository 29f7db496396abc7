package coordinator

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// engineStuckNegotiator starts negotiations that never end (its process "hangs").
type engineStuckNegotiator struct{ starts atomic.Int32 }

func (n *engineStuckNegotiator) Start(_ context.Context, req NegotiationRequest) (*negotiatorv1.Negotiation, error) {
	n.starts.Add(1)
	return &negotiatorv1.Negotiation{Id: req.NegotiationID, State: negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING}, nil
}

func (n *engineStuckNegotiator) Status(_ context.Context, _, id string) (*negotiatorv1.Negotiation, error) {
	return &negotiatorv1.Negotiation{Id: id, State: negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING}, nil
}

func (n *engineStuckNegotiator) Wait(ctx context.Context, _, _ string) (*negotiatorv1.Negotiation, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// A coordinator that stops releases its leases: another one, on the same store, claims
// the proposals it was moving and finishes them, starting the same negotiation (the id
// recorded at submission), and every move happens once.
func TestEngineTakesOverAStoppedCoordinatorsProposals(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	stuck := &engineStuckNegotiator{}
	first, err := New(Deps{Store: st, World: world.NewSimulated(st), Policy: policy.Default(), Negotiator: stuck, Scorer: fakeScorer{},
		Logger: logger, Engine: EngineConfig{Owner: "first", Lease: time.Hour, Sweep: time.Hour}})
	require.NoError(t, err)

	var ids []string
	for _, target := range []string{"svc-a", "svc-b", "svc-c"} {
		resp, err := first.SubmitProposal(proposerContext(), &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
			Manifest: manifest(t, `{"action":"scale","target":"`+target+`","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1}}`)})
		require.NoError(t, err)
		require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_NEGOTIATING, resp.GetProposal().GetStatus())
		ids = append(ids, resp.GetProposal().GetId())
	}
	require.Eventually(t, func() bool { return stuck.starts.Load() == 3 }, 10*time.Second, time.Millisecond)
	// Its leases last an hour: while it runs, nobody else may take its work.
	none, err := st.Proposals().ClaimWork(context.Background(), "intruder", engineStates, time.Now(), time.Now().Add(time.Minute), 10)
	require.NoError(t, err)
	require.Empty(t, none, "leased work is not claimed by another coordinator")

	require.NoError(t, first.Close()) // releases its leases
	agreeing := &owndataRecorder{}
	second, err := New(Deps{Store: st, World: world.NewSimulated(st), Policy: policy.Default(), Negotiator: agreeing, Scorer: agreeing,
		Logger: logger, Engine: EngineConfig{Owner: "second", Sweep: 10 * time.Millisecond}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = second.Close() })

	for _, id := range ids {
		p := awaitSettled(t, st, "t1", id)
		require.Equal(t, stScored, p.Status, "proposal %s", id)
		require.Equal(t, int64(4), p.Version, "proposal %s: SUBMITTED, NEGOTIATING, AGREED, SCORED, once each", id)
		d, err := decision(p)
		require.NoError(t, err)
		agreeing.mu.Lock()
		var started []string
		for _, s := range agreeing.starts {
			if s.ProposalID == id {
				started = append(started, s.NegotiationID)
			}
		}
		agreeing.mu.Unlock()
		require.Equal(t, []string{d.GetVotes().GetNegotiationId()}, started, "the negotiation recorded at submission, started once")
	}
}

// A conflict on a proposal that did not move is retried with a delay: the engine does
// not spin on it.
func TestEngineRetriesAStepThatKeepsFailing(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	refusing := &engineRefusingNegotiator{}
	s, err := New(Deps{Store: st, World: world.NewSimulated(st), Policy: policy.Default(), Negotiator: refusing, Scorer: fakeScorer{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Engine: EngineConfig{Owner: "one", Retry: time.Hour}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.SubmitProposal(proposerContext(), &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
		Manifest: &typesv1.Manifest{Action: "scale", Target: "svc", Regions: []string{"eu-west"}, Impact: "low"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return refusing.calls.Load() >= 1 }, 10*time.Second, time.Millisecond)
	// With an hour between retries, the count stays at one however long we look: the
	// check is on the count, not on time.
	require.Never(t, func() bool { return refusing.calls.Load() > 1 }, 200*time.Millisecond, 10*time.Millisecond)
}

// engineRefusingNegotiator answers every start with a conflict that moves nothing.
type engineRefusingNegotiator struct{ calls atomic.Int32 }

func (n *engineRefusingNegotiator) Start(context.Context, NegotiationRequest) (*negotiatorv1.Negotiation, error) {
	n.calls.Add(1)
	return nil, status.Error(codes.Aborted, "try again")
}

func (n *engineRefusingNegotiator) Status(_ context.Context, _, id string) (*negotiatorv1.Negotiation, error) {
	return nil, status.Errorf(codes.NotFound, "negotiation %s not found", id)
}

func (n *engineRefusingNegotiator) Wait(ctx context.Context, t, id string) (*negotiatorv1.Negotiation, error) {
	return n.Status(ctx, t, id)
}

// A long poll that ends without a change here (it timed out, or another process moved
// the proposal) leaves nothing behind: the watchers held only while someone waits.
func TestLongPollLeavesNoWatcherBehind(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	stuck := &engineStuckNegotiator{}
	s, err := New(Deps{Store: st, World: world.NewSimulated(st), Policy: policy.Default(), Negotiator: stuck, Scorer: fakeScorer{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	resp, err := s.SubmitProposal(proposerContext(), &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
		Manifest: manifest(t, `{"action":"scale","target":"svc","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1}}`)})
	require.NoError(t, err)
	for range 3 {
		got, err := s.GetProposal(proposerContext(), &coordinatorv1.GetProposalRequest{Id: resp.GetProposal().GetId(), WaitMs: 20})
		require.NoError(t, err)
		require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_NEGOTIATING, got.GetProposal().GetStatus())
	}
	require.Zero(t, s.changes.waiting(), "no watcher is left once the long polls have returned")

	// A change made here still wakes a waiting poll at once.
	changed, release := s.changes.watch("x")
	s.changes.notify("x")
	<-changed
	release()
	require.Zero(t, s.changes.waiting())
}
