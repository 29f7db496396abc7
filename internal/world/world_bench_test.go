package world

import (
	"context"
	"runtime"
	"syscall"
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

// processCPU is the CPU time this process has used (all goroutines, the store's
// committer included).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU resets the timer and returns the process CPU time at the start of the
// measured loop, for reportFloor.
func startCPU(b *testing.B) time.Duration {
	b.ReportAllocs()
	b.ResetTimer()
	return processCPU(b)
}

// reportFloor reports the process CPU time per op of the measured loop since cpu0
// (cpu-ns/op: on a shared machine it moves less than wall time), then runs floor n
// times and reports its cost per run beside the benchmark's own: floor-ns/op and
// floor-allocs/op. The floor is one single-row world state query, the least any read
// of stored state pays.
func reportFloor(b *testing.B, cpu0 time.Duration, floor func()) {
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
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
	cpu0 := startCPU(b)
	for range b.N {
		if _, err := w.Read(ctx, "t1", "svc", benchRegions); err != nil {
			b.Fatal(err)
		}
	}
	reportFloor(b, cpu0, getFloor(b, st, "svc"))
}

// BenchmarkPlan is one Plan of a scale-out in five regions.
func BenchmarkPlan(b *testing.B) {
	w, st := newBenchWorld(b)
	ctx := context.Background()
	c := Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: benchRegions, Parameters: map[string]any{"replicas_delta": 2.0}}
	if _, err := w.Plan(ctx, c); err != nil {
		b.Fatal(err)
	}
	cpu0 := startCPU(b)
	for range b.N {
		if _, err := w.Plan(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	reportFloor(b, cpu0, getFloor(b, st, "svc"))
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
	cpu0 := startCPU(b)
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
	reportFloor(b, cpu0, getFloor(b, st, targets[0]))
}
