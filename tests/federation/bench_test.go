package federation

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
)

// BenchmarkTimeToQuorum: five region processes and the coordinator on loopback. Each
// iteration starts a negotiation over gRPC and follows it with WatchNegotiation until
// it ends AGREED: ms/quorum is that client-observed time (fan-out, five decisions and
// signatures, the coordinator's checks of ten signatures, the store's commits). The
// floor, from the same run and the same processes: floor-ms is five parallel bare
// RequestVote round trips, one to each region (an empty request, refused as
// INVALID_ARGUMENT after the token check: transport and authentication, no decision).
//
//	go test -run '^$' -bench TimeToQuorum -benchtime 100x ./tests/federation
func BenchmarkTimeToQuorum(b *testing.B) {
	f := newFederation(b, nil)
	c, ctx, done := f.client()
	defer done()

	conns := make([]negotiatorv1.RegionServiceClient, len(f.regions))
	for i, r := range f.regions {
		conn, err := grpc.NewClient(r.regionAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(b, err)
		defer conn.Close()
		conns[i] = negotiatorv1.NewRegionServiceClient(conn)
	}
	fedCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	fanout := func() {
		var wg sync.WaitGroup
		for _, rc := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := rc.RequestVote(fedCtx, &negotiatorv1.RequestVoteRequest{})
				if status.Code(err) != codes.InvalidArgument {
					b.Errorf("bare round trip: %v", err)
				}
			}()
		}
		wg.Wait()
	}
	quorum := func(i int) {
		resp, err := c.StartNegotiation(ctx, &negotiatorv1.StartNegotiationRequest{
			ProposalId: fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i), Manifest: scaleManifest(12), DeadlineMs: 10000})
		require.NoError(b, err)
		stream, err := c.WatchNegotiation(ctx, &negotiatorv1.WatchNegotiationRequest{Id: resp.GetNegotiation().GetId()})
		require.NoError(b, err)
		for {
			m, err := stream.Recv()
			require.NoError(b, err)
			if s := m.GetNegotiation().GetState(); s != negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING {
				require.Equal(b, agreed, s, m.GetNegotiation().GetReason())
				return
			}
		}
	}
	for i := range 5 { // warm the connections of both paths
		fanout()
		quorum(-1 - i)
	}

	var floor, total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fanout()
		t1 := time.Now()
		quorum(i)
		floor += t1.Sub(t0)
		total += time.Since(t1)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(total), "ms/quorum")
	b.ReportMetric(ms(floor), "floor-ms/fanout")
	b.ReportMetric(float64(total)/float64(floor), "x-floor")
}
