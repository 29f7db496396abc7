package canary

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the canary runner's Prometheus series, registered on Deps.Registerer.
type metrics struct {
	// runs: runs finished, by kind (dry_run, canary) and final state.
	runs *prometheus.CounterVec
	// steps: chain steps and stages judged, by step and result.
	steps *prometheus.CounterVec
	// duration: how long a run took, by kind.
	duration *prometheus.HistogramVec
	// verdicts: waves judged, by verdict (PASS, MARGINAL, FAIL, NONE without data).
	verdicts *prometheus.CounterVec
	// score: the judge's scores of waves.
	score prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_canary_runs_total",
			Help: "Canary runs and whole-chain dry runs finished, by kind and final state.",
		}, []string{"kind", "state"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_canary_steps_total",
			Help: "Steps of canary runs and dry runs, by step and result.",
		}, []string{"step", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fabric_canary_run_duration_seconds",
			Help:    "Time a canary run or dry run took, by kind.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"kind"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_canary_verdicts_total",
			Help: "Canary waves judged, by verdict (PASS, MARGINAL, FAIL; NONE when data was missing).",
		}, []string{"verdict"}),
		score: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fabric_canary_score",
			Help:    "The judge's score (0-100) of each canary wave.",
			Buckets: []float64{0, 25, 50, 75, 90, 95, 99, 100},
		}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.steps, m.duration, m.verdicts, m.score} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("canary: register metrics: %w", err)
		}
	}
	for _, st := range []string{statePassed, stateFailed} {
		m.runs.WithLabelValues(kindDryRun, st) // export zeros, so rate() works from the first run
	}
	for _, st := range []string{statePromoted, stateHeld, stateRolledBack, stateStopped, stateFailed} {
		m.runs.WithLabelValues(kindCanary, st)
	}
	for _, v := range []string{"PASS", "MARGINAL", "FAIL", "NONE"} {
		m.verdicts.WithLabelValues(v)
	}
	return m, nil
}
