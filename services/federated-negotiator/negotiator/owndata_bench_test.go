package negotiator_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

// BenchmarkOneRoundNegotiation: start a negotiation of five regions that agrees in its
// first round and wait until its outcome is stored; reports the durable commits each
// negotiation makes (commits/op).
func BenchmarkOneRoundNegotiation(b *testing.B) {
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			cfg := store.Config{DataDir: filepath.Join(b.TempDir(), "data")}
			if backend == store.BackendPostgres {
				cfg = store.Config{PostgresDSN: pgtest.NewDSN(b)}
			}
			raw, err := store.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = raw.Close() })
			st := &owndataCommits{Store: raw}
			done := make(chan *negotiatorv1.Negotiation, 1)
			svc, err := negotiator.NewService(negotiator.Deps{Store: st, KeySeed: testSeed, Registerer: prometheus.NewRegistry(),
				DecisionTimeout: time.Minute, Regions: regionsConfig(b, twoRefuse),
				OnFinished: func(_ context.Context, n *negotiatorv1.Negotiation) { done <- n }})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = svc.Close() })
			b.ResetTimer()
			for i := range b.N {
				_, err := svc.StartNegotiation(as("t1"), &negotiatorv1.StartNegotiationRequest{
					ProposalId: fmt.Sprintf("p%d", i), Manifest: scale(3)})
				if err != nil {
					b.Fatal(err)
				}
				if n := <-done; n.GetState() != agreed {
					b.Fatalf("%v: %s", n.GetState(), n.GetReason())
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(st.n.Load())/float64(b.N), "commits/op")
		})
	}
}
