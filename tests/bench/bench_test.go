// Package bench measures the fabric's request paths beside a floor taken in the same
// run: a bare gRPC round trip on loopback (no interceptors, no store). Each benchmark
// reports its own ns/op, the floor's ns/op ("floor-ns/op") and the ratio ("x-floor"),
// so figures from a noisy shared machine stay comparable.
//
//	make bench   (or: go test -run '^$' -bench . ./tests/bench/)
package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	floorOnce sync.Once
	floorNS   float64
)

// bareHealth starts a gRPC server with only the health service (no interceptors, no
// store) on loopback and returns a client of it.
func bareHealth(b *testing.B) healthpb.HealthClient {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	b.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(b, err)
	b.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// floor measures a bare gRPC unary round trip on loopback, once per run.
func floor(b *testing.B) float64 {
	floorOnce.Do(func() {
		c := bareHealth(b)
		// testing.Benchmark cannot run inside a benchmark (it takes the same lock), so the
		// floor is timed directly: warm up, then a fixed number of round trips.
		const warm, n = 200, 5000
		var start time.Time
		for i := range warm + n {
			if i == warm {
				start = time.Now()
			}
			if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				b.Fatal(err)
			}
		}
		floorNS = float64(time.Since(start).Nanoseconds()) / n
	})
	return floorNS
}

func report(b *testing.B) {
	f := floor(b)
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(f, "floor-ns/op")
	b.ReportMetric(perOp/f, "x-floor")
}

// BenchmarkFloorGRPCRoundTrip is the floor itself, as an ordinary benchmark.
func BenchmarkFloorGRPCRoundTrip(b *testing.B) {
	c := bareHealth(b)
	for b.Loop() {
		if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmitProposal: POST /proposals through the whole chain (gateway, auth,
// validation, P1 scan, world read, durable insert of proposal + snapshot).
func BenchmarkSubmitProposal(b *testing.B) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		f := fabrictest.Start(b, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st})
		tok := f.Token(b, "t1", auth.RoleProposer)
		b.Run(fmt.Sprintf("rest/%s", st), func(b *testing.B) {
			client := &http.Client{}
			url := f.URL(fabric.Coordinator) + "/proposals"
			for i := 0; b.Loop(); i++ {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(
					fmt.Sprintf(`{"tenant_id":"t1","manifest":{"action":"scale","target":"svc-%d"}}`, i%64)))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
				resp.Body.Close()
			}
			report(b)
		})
		b.Run(fmt.Sprintf("grpc/%s", st), func(b *testing.B) {
			c := coordinatorv1.NewCoordinatorServiceClient(f.Conn(b, fabric.Coordinator))
			ctx := fabrictest.WithToken(context.Background(), tok)
			for i := 0; b.Loop(); i++ {
				_, err := c.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{
					TenantId: "t1", Manifest: &typesv1.Manifest{Action: "scale", Target: fmt.Sprintf("svc-%d", i%64)},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
}
