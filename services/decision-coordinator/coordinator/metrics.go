package coordinator

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the coordinator's Prometheus series, registered on Deps.Registerer.
type metrics struct {
	// outboxPending: audit events waiting in the outbox after the relay's last sweep.
	outboxPending prometheus.Gauge
	// outboxDeferred: events the request path could not deliver and left to the relay.
	outboxDeferred prometheus.Counter
	// outboxRelayed: events the relay delivered.
	outboxRelayed prometheus.Counter
	// engineActive: proposals the lifecycle engine drives now; engineClaimed: proposals
	// it claimed from the store (left by another process, or never leased);
	// engineRetries: steps that failed and were tried again.
	engineActive  prometheus.Gauge
	engineClaimed prometheus.Counter
	engineRetries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fabric_audit_outbox_pending",
			Help: "Audit events waiting in the coordinator's outbox for the auditor, as of the relay's last sweep.",
		}),
		outboxDeferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_outbox_deferred_total",
			Help: "Audit events the request path could not deliver and left to the relay.",
		}),
		outboxRelayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_outbox_relayed_total",
			Help: "Audit events the relay delivered after the request path could not.",
		}),
		engineActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fabric_lifecycle_active",
			Help: "Proposals the coordinator's lifecycle engine is moving now.",
		}),
		engineClaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_lifecycle_claimed_total",
			Help: "Proposals the lifecycle engine claimed from the store: left by a coordinator that stopped, or never leased.",
		}),
		engineRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_lifecycle_retries_total",
			Help: "Lifecycle steps that failed (a collaborator unavailable) and were tried again.",
		}),
	}
	if reg == nil {
		return m, nil // not exported (tests)
	}
	for _, c := range []prometheus.Collector{m.outboxPending, m.outboxDeferred, m.outboxRelayed, m.engineActive, m.engineClaimed, m.engineRetries} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("coordinator: register metrics: %w", err)
		}
	}
	return m, nil
}
