package judge_test

import (
	"fmt"

	"github.com/decision-fabric/fabric/internal/judge"
)

func ExampleJudge() {
	baseline := []float64{98, 101, 99, 100, 102, 97, 100, 103, 99, 101, 100, 98}
	slower := []float64{178, 181, 179, 180, 182, 177, 180, 183, 179, 181, 180, 178}
	res, err := judge.Judge(judge.Config{
		Metrics: []judge.Metric{
			{Name: "latency_p99", Group: "latency", Direction: judge.Increase},
			{Name: "errors", Group: "errors", Direction: judge.Increase, NodataPolicy: judge.NodataFail},
			{Name: "rps", Group: "throughput", Direction: judge.Decrease},
		},
	}, map[string]judge.Series{
		"latency_p99": {Baseline: baseline, Canary: slower},
		"rps":         {Baseline: baseline, Canary: baseline},
		// "errors" is missing: NodataFailMetric under the fail policy.
	})
	if err != nil {
		panic(err)
	}
	for _, m := range res.Metrics {
		fmt.Println(m.Classification, "-", m.Reason)
	}
	fmt.Println(res.Verdict, res.Score, "-", res.Reason)
	// Output:
	// High - latency_p99: canary mean 179.8 vs baseline mean 99.83 (ratio 1.80), Mann-Whitney p=7.4e-07 < 0.02, shift 80 (98% CI 78 to 82) above +20 (tolerance 0.25 × |shift|): High
	// NodataFailMetric - errors: no data (metric absent): NodataFailMetric
	// Pass - rps: canary mean 99.83 vs baseline mean 99.83 (ratio 1.00), canary and baseline data are identical: Pass
	// FAIL 33.33 - score 33.33 < marginal 75.00 (3 scored metrics: 1 Pass, 1 High, 1 NodataFailMetric)
}
