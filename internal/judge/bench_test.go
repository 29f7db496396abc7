package judge

import (
	"fmt"
	"math/rand/v2"
	"testing"

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

// BenchmarkJudge judges one metric of n samples a side. For each size it
// first runs the floor, a bare stats.MannWhitneyUTest on the same data with
// the argument order Judge uses (the exact distribution's cost depends on
// it), then the judge, which reports the floor's ns/op beside its own
// (mwu-floor-ns/op) and the ratio (x-floor). Floor and judge run back to
// back so that machine load disturbs both alike.
func BenchmarkJudge(b *testing.B) {
	for _, n := range []int{30, 120, 1000, 10000} {
		s := benchSeries(n)
		x, y := s.Canary, s.Baseline
		if 2*uStatistic(x, y) > float64(len(x)*len(y)) {
			x, y = y, x
		}
		var floor float64
		b.Run(fmt.Sprintf("n=%d/mwu-floor", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := stats.MannWhitneyUTest(x, y, stats.LocationDiffers); err != nil {
					b.Fatal(err)
				}
			}
			floor = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(fmt.Sprintf("n=%d/judge", n), func(b *testing.B) {
			c := Config{Metrics: []Metric{{Name: "latency", Direction: Increase}}}
			data := map[string]Series{"latency": s}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Judge(c, data); err != nil {
					b.Fatal(err)
				}
			}
			if floor > 0 {
				perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(floor, "mwu-floor-ns/op")
				b.ReportMetric(perOp/floor, "x-floor")
			}
		})
	}
}

// BenchmarkJudge20Metrics is a realistic canary step: 20 metrics of 120 to
// 139 samples (two hours at one a minute), outlier removal on.
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

// BenchmarkHodgesLehmann is the estimator and interval alone.
func BenchmarkHodgesLehmann(b *testing.B) {
	for _, n := range []int{120, 1000} {
		s := benchSeries(n)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for b.Loop() {
				hodgesLehmann(s.Canary, s.Baseline, DefaultConfidence)
			}
		})
	}
}
