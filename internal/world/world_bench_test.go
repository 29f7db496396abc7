package world

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/store"
)

// benchRegions are the five regions the decision benchmark's manifests touch.
var benchRegions = []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south"}

func newBenchWorld(b *testing.B) (*Simulated, store.Store) {
	b.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return NewSimulated(st), st
}

// reportFloor runs floor n times after the measured loop and reports its cost per
// run beside the benchmark's own: floor-ns/op and floor-allocs/op. The floor is one
// single-row world state query, the least any read of stored state pays.
func reportFloor(b *testing.B, floor func()) {
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range b.N {
		floor()
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "floor-ns/op")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "floor-allocs/op")
}

// getFloor is one world state query of a seeded region.
func getFloor(b *testing.B, st store.Store, target string) func() {
	return func() {
		if _, err := st.WorldStates().Get(context.Background(), "t1", benchRegions[0], target); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead is one Read of a seeded target in five regions.
func BenchmarkRead(b *testing.B) {
	w, st := newBenchWorld(b)
	ctx := context.Background()
	if _, err := w.Read(ctx, "t1", "svc", benchRegions); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Read(ctx, "t1", "svc", benchRegions); err != nil {
			b.Fatal(err)
		}
	}
	reportFloor(b, getFloor(b, st, "svc"))
}

// BenchmarkPlan is one Plan of a scale-out in five regions.
func BenchmarkPlan(b *testing.B) {
	w, st := newBenchWorld(b)
	ctx := context.Background()
	c := Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: benchRegions, Parameters: map[string]any{"replicas_delta": 2.0}}
	if _, err := w.Plan(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Plan(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	reportFloor(b, getFloor(b, st, "svc"))
}

// BenchmarkDecision is the world's share of one decision, as the coordinator and the
// scorer call it: submit reads the pre-state and plans it for policy, the scorer reads
// and plans, the dry run reads and plans, then the change is applied. Each iteration
// uses a new target, so the first read seeds it.
func BenchmarkDecision(b *testing.B) {
	w, st := newBenchWorld(b)
	ctx := context.Background()
	targets := make([]string, b.N)
	for i := range targets {
		targets[i] = "svc-" + time.Duration(i).String()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c := Change{TenantID: "t1", Action: "scale", Target: targets[i], Regions: benchRegions, Parameters: map[string]any{"replicas_delta": 2.0}}
		var pre Snapshot
		for range 3 {
			var err error
			if pre, err = w.Read(ctx, c.TenantID, c.Target, c.Regions); err != nil {
				b.Fatal(err)
			}
			if _, err := w.Plan(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Apply(ctx, c, pre); err != nil {
			b.Fatal(err)
		}
	}
	reportFloor(b, getFloor(b, st, targets[0]))
}
