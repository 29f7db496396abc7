package negotiator

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the negotiator's Prometheus series, registered on the
// Registerer passed in Deps (never the global registry).
type metrics struct {
	// duration: start to end of each negotiation, by outcome (agreed, rejected, expired).
	duration *prometheus.HistogramVec
	// rounds: rounds each negotiation took, by outcome.
	rounds *prometheus.HistogramVec
	// votes: votes recorded, by verdict (accept, reject, counter, abstain).
	votes *prometheus.CounterVec
	// running: negotiations this process is running now.
	running prometheus.Gauge
	// refused: regions' votes refused by a federation coordinator, by reason
	// (forged, replayed, duplicate, late, malformed; remote.go).
	refused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fabric_negotiation_duration_seconds",
			Help:    "Time from the start of a negotiation to its outcome, by outcome.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"outcome"}),
		rounds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fabric_negotiation_rounds",
			Help:    "Rounds a negotiation took until its outcome, by outcome.",
			Buckets: prometheus.LinearBuckets(1, 1, maxMaxRounds),
		}, []string{"outcome"}),
		votes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_negotiation_votes_total",
			Help: "Regional votes recorded, by verdict.",
		}, []string{"verdict"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fabric_negotiations_running",
			Help: "Negotiations this process is running.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_federation_votes_refused_total",
			Help: "Votes of regions running as processes that the coordinating negotiator refused, by reason (forged, replayed, duplicate, late, malformed).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.rounds, m.votes, m.running, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("negotiator: register metrics: %w", err)
		}
	}
	for _, v := range []string{"accept", "reject", "counter", "abstain"} {
		m.votes.WithLabelValues(v) // export zeros, so rate() works from the first vote
	}
	for _, r := range refusedReasons {
		m.refused.WithLabelValues(r)
	}
	return m, nil
}
