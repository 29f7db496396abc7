package coordinator

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// owndataRecorder is a negotiator that agrees at once (4 of 5 accept) and a scorer,
// both recording what the coordinator sends them.
type owndataRecorder struct {
	mu     sync.Mutex
	starts []NegotiationRequest
	scores []ScoreInput
}

func (r *owndataRecorder) Start(_ context.Context, req NegotiationRequest) (*negotiatorv1.Negotiation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, req)
	return owndataAgreed(req.NegotiationID), nil
}

func owndataAgreed(id string) *negotiatorv1.Negotiation {
	n := &negotiatorv1.Negotiation{Id: id, State: negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED, Round: 1, Reason: "agreed"}
	for i, v := range []negotiatorv1.Verdict{1, 1, 1, 1, 2} {
		n.Votes = append(n.Votes, &negotiatorv1.Vote{Region: string(rune('a' + i)), Round: 1, Verdict: v})
	}
	return n
}

// Status knows only the negotiations started.
func (r *owndataRecorder) Status(_ context.Context, _, id string) (*negotiatorv1.Negotiation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.starts {
		if s.NegotiationID == id {
			return owndataAgreed(id), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "negotiation %s not found", id)
}

func (r *owndataRecorder) Wait(ctx context.Context, tenant, id string) (*negotiatorv1.Negotiation, error) {
	return r.Status(ctx, tenant, id)
}

func (r *owndataRecorder) Score(_ context.Context, in ScoreInput) (*scorerv1.ScoreResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scores = append(r.scores, in)
	return &scorerv1.ScoreResponse{Confidence: 0.8}, nil
}

// The negotiator and the scorer get everything they need in their requests: the
// manifest with the digest the coordinator stored, the policy's quorum and an absolute
// deadline counted from the submission; the manifest to enact, the impact, the final
// round's votes and the history counts from the coordinator's own table.
func TestCalleesGetTheirInputsInTheRequest(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	for range 2 {
		owndataAddProposal(t, st, "t1", stEnacted, "scale", "svc-req")
	}
	owndataAddProposal(t, st, "t1", stRolledBack, "scale", "other")
	rec := &owndataRecorder{}
	s, err := New(Deps{Store: st, World: world.NewSimulated(st), Policy: policy.Default(), Negotiator: rec, Scorer: rec,
		DecisionTimeout: 7 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)

	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "user:p", TenantID: "t1", Roles: []string{auth.RoleProposer}})
	m := &typesv1.Manifest{Action: "scale", Target: "svc-req", Impact: "low"}
	m.Parameters, err = structpb.NewStruct(map[string]any{"replicas_delta": 1})
	require.NoError(t, err)
	resp, err := s.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m})
	require.NoError(t, err)
	p := awaitSettled(t, st, "t1", resp.GetProposal().GetId())

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.starts, 1)
	start := rec.starts[0]
	require.Equal(t, p.ID, start.ProposalID)
	require.Equal(t, "t1", start.TenantID)
	raw, err := canonical.Proto(start.Manifest)
	require.NoError(t, err)
	require.Equal(t, p.ManifestSHA256, canonical.SHA256Hex(raw), "the digest the negotiator recomputes")
	require.Equal(t, p.ManifestSHA256, start.ManifestSHA256)
	require.Equal(t, policy.QuorumMajority, start.Quorum)
	d, err := decision(p)
	require.NoError(t, err)
	timeout := time.Duration(d.GetPolicy().GetDecisionTimeoutMs()) * time.Millisecond
	require.Positive(t, timeout)
	require.True(t, start.Deadline.Equal(p.CreatedAt.Add(timeout)), "deadline %v = created %v + %v", start.Deadline, p.CreatedAt, timeout)

	require.Len(t, rec.scores, 1)
	in := rec.scores[0]
	require.Equal(t, p.ID, in.ProposalID)
	require.True(t, proto.Equal(m, in.Manifest), "the submitted manifest (no counter-offer): %v", in.Manifest)
	require.Equal(t, p.Impact, in.Impact)
	require.Equal(t, int32(4), in.Votes.GetAccept())
	require.Equal(t, int32(1), in.Votes.GetReject())
	require.True(t, proto.Equal(&scorerv1.HistoryCounts{ActionTargetSuccesses: 2, ActionSuccesses: 2, ActionFailures: 1}, in.History), "%v", in.History)
}

// A proposal whose deadline passed before its negotiation started (a coordinator that
// was down) is never sent to the negotiator: it ends EXPIRED with the reason.
func TestNoNegotiationStartsAfterTheDeadline(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	rec := &owndataRecorder{}
	clock := time.Now()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	// Submitted while the negotiator is unreachable: stored SUBMITTED.
	down, err := New(Deps{Store: st, World: world.NewSimulated(st), Policy: policy.Default(), Now: now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "user:p", TenantID: "t1", Roles: []string{auth.RoleProposer}})
	resp, err := down.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
		Manifest: &typesv1.Manifest{Action: "scale", Target: "svc-late", Impact: "low"}})
	require.NoError(t, err)
	require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED, resp.GetProposal().GetStatus())

	// Back after the deadline, with a negotiator: nothing is negotiated.
	mu.Lock()
	clock = clock.Add(time.Hour)
	mu.Unlock()
	up, err := New(Deps{Store: st, World: world.NewSimulated(st), Policy: policy.Default(), Negotiator: rec, Scorer: rec, Now: now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	awaitSettled(t, st, "t1", resp.GetProposal().GetId())
	got, err := up.GetProposal(ctx, &coordinatorv1.GetProposalRequest{Id: resp.GetProposal().GetId()})
	require.NoError(t, err)
	require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_EXPIRED, got.GetProposal().GetStatus())
	require.Contains(t, got.GetProposal().GetReason(), "passed before the negotiation started")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Empty(t, rec.starts, "no negotiation after the deadline")
}
