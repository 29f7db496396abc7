package judge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aclements/go-moremath/stats"
)

// benchSeries is a baseline and a canary 3% higher, both noisy, without ties.
func benchSeries(n int) Series {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	s := Series{Baseline: make([]float64, n), Canary: make([]float64, n)}
	for i := range n {
		s.Baseline[i] = 100 + 10*r.NormFloat64()
		s.Canary[i] = 103 + 10*r.NormFloat64()
	}
	return s
}

var (
	floorMu sync.Mutex
	floors  = map[int]float64{}
)

// mwuFloor is the cost of a bare stats.MannWhitneyUTest on the same data,
// the floor under one metric's judgement, measured once per size; the
// cheaper of the two argument orders (the exact distribution's cost depends
// on it), so that the ratio is not flattered.
func mwuFloor(n int, s Series) float64 {
	floorMu.Lock()
	defer floorMu.Unlock()
	if f, ok := floors[n]; ok {
		return f
	}
	// testing.Benchmark cannot run inside a benchmark (it waits on the
	// same lock), so time it by hand: double the count until 200ms.
	best := math.Inf(1)
	for _, args := range [][2][]float64{{s.Canary, s.Baseline}, {s.Baseline, s.Canary}} {
		for iters := 1; ; iters *= 2 {
			start := time.Now()
			for range iters {
				if _, err := stats.MannWhitneyUTest(args[0], args[1], stats.LocationDiffers); err != nil {
					panic(err)
				}
			}
			if el := time.Since(start); el >= 200*time.Millisecond {
				best = math.Min(best, float64(el.Nanoseconds())/float64(iters))
				break
			}
		}
	}
	floors[n] = best
	return floors[n]
}

// BenchmarkJudge judges one metric of n samples a side and reports, beside
// its own ns/op, the floor (a bare Mann-Whitney U test on the same data)
// and the ratio of the two.
func BenchmarkJudge(b *testing.B) {
	for _, n := range []int{30, 120, 1000, 10000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := benchSeries(n)
			c := Config{Metrics: []Metric{{Name: "latency", Direction: Increase}}}
			data := map[string]Series{"latency": s}
			floor := mwuFloor(n, s)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Judge(c, data); err != nil {
					b.Fatal(err)
				}
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(floor, "mwu-floor-ns/op")
			b.ReportMetric(perOp/floor, "x-floor")
		})
	}
}

// BenchmarkJudge20Metrics is a realistic canary step: 20 metrics of 120
// samples (two hours at one a minute), outlier removal on.
func BenchmarkJudge20Metrics(b *testing.B) {
	c := Config{}
	data := map[string]Series{}
	for i := range 20 {
		name := fmt.Sprintf("m%d", i)
		c.Metrics = append(c.Metrics, Metric{Name: name, Group: []string{"latency", "errors"}[i%2], OutlierRemoval: true})
		data[name] = benchSeries(120 + i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Judge(c, data); err != nil {
			b.Fatal(err)
		}
	}
}
