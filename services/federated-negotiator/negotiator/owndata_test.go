package negotiator_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
)

// owndataCommits counts the durable commits a store is asked for: by the store's
// contract every write method called outside InTx is one commit, and so is InTx.
type owndataCommits struct {
	store.Store
	n atomic.Int64
}

func (c *owndataCommits) Negotiations() store.NegotiationStore {
	return owndataNegotiationCommits{c.Store.Negotiations(), &c.n}
}

func (c *owndataCommits) InTx(ctx context.Context, fn func(tx store.Store) error) error {
	c.n.Add(1)
	return c.Store.InTx(ctx, fn)
}

type owndataNegotiationCommits struct {
	store.NegotiationStore
	n *atomic.Int64
}

func (s owndataNegotiationCommits) Create(ctx context.Context, n *store.Negotiation) (*store.Negotiation, error) {
	s.n.Add(1)
	return s.NegotiationStore.Create(ctx, n)
}

func (s owndataNegotiationCommits) Update(ctx context.Context, n *store.Negotiation, v int64) (*store.Negotiation, error) {
	s.n.Add(1)
	return s.NegotiationStore.Update(ctx, n, v)
}

func (s owndataNegotiationCommits) EndRound(ctx context.Context, n *store.Negotiation, v int64, votes []*store.NegotiationVote) (*store.Negotiation, error) {
	s.n.Add(1)
	return s.NegotiationStore.EndRound(ctx, n, v, votes)
}

func (s owndataNegotiationCommits) AddVote(ctx context.Context, v *store.NegotiationVote) (*store.NegotiationVote, error) {
	s.n.Add(1)
	return s.NegotiationStore.AddVote(ctx, v)
}

// A negotiation decided in its first round costs two commits: its creation, then the
// round's votes with the outcome. Every vote that decided it is stored.
func TestOneRoundNegotiationCostsTwoCommits(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			st := &owndataCommits{Store: storeOpener(t, backend)()}
			h := newService(t, st, &proposals{}, twoRefuse)
			n := h.start(t, "t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", Manifest: scale(3)})
			got := h.waitEnd(t, "t1", n.GetId())
			require.Equal(t, agreed, got.GetState(), got.GetReason())
			require.Equal(t, int32(1), got.GetRound())
			<-h.finished // the outcome is stored and reported
			require.Equal(t, int64(2), st.n.Load(), "durable commits for a one-round negotiation")

			stored, err := st.Negotiations().ListVotes(t.Context(), "t1", n.GetId())
			require.NoError(t, err)
			require.GreaterOrEqual(t, len(stored), 3, "the votes that made the majority are stored with the outcome")
			requireSignedVotes(t, got)
		})
	}
}

// StartNegotiation is idempotent per (tenant, proposal): a retry returns the proposal's
// negotiation, running or ended, and never starts a second one; a retry with another
// manifest is refused. The absolute deadline wins over deadline_ms.
func TestStartIsIdempotentPerProposal(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			h := newService(t, storeOpener(t, backend)(), &proposals{}, twoRefuse)
			deadline := time.Now().Add(90 * time.Second).UTC().Truncate(time.Millisecond)
			raw, err := canonical.Proto(scale(3))
			require.NoError(t, err)
			req := func() *negotiatorv1.StartNegotiationRequest {
				return &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", Manifest: scale(3),
					ManifestSha256: canonical.SHA256Hex(raw), Deadline: timestamppb.New(deadline), DeadlineMs: 1000}
			}
			first := h.start(t, "t1", req())
			require.Equal(t, canonical.SHA256Hex(raw), first.GetProposalDigest())
			require.True(t, first.GetDeadline().AsTime().Equal(deadline), "the absolute deadline wins: %v", first.GetDeadline().AsTime())
			ended := h.waitEnd(t, "t1", first.GetId())

			again, err := h.startErr("t1", req())
			require.NoError(t, err)
			require.Equal(t, first.GetId(), again.GetNegotiation().GetId(), "the ended negotiation is returned")
			require.Equal(t, ended.GetState(), again.GetNegotiation().GetState())

			other := scale(4)
			_, err = h.startErr("t1", &negotiatorv1.StartNegotiationRequest{ProposalId: "p1", Manifest: other})
			require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)

			all, err := h.store.Negotiations().ListByProposal(t.Context(), "t1", "p1", 0)
			require.NoError(t, err)
			require.Len(t, all, 1, "one negotiation per proposal")
		})
	}
}
