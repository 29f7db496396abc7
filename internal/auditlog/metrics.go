package auditlog

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the audit log's Prometheus series, registered on the
// Registerer passed in Options (never the global registry). No series is
// labelled by tenant, proposal or event, so their number stays fixed.
type metrics struct {
	// appended: entries appended (retries answered from an idempotency key excluded).
	appended prometheus.Counter
	// batch: appends per transaction (group commit).
	batch prometheus.Histogram
	// commit: time to append one batch durably, retries included.
	commit prometheus.Histogram
	// conflicts: batches retried because another process appended first.
	conflicts prometheus.Counter
	// checkpoints: checkpoints signed and stored.
	checkpoints prometheus.Counter
	// publishFailures: checkpoints stored but not appended to the checkpoint file.
	publishFailures prometheus.Counter
	// witnessFailures: checkpoints the witness did not cosign.
	witnessFailures prometheus.Counter
	// tampered: Verify runs that found a log not matching its hashes or checkpoints.
	tampered prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_entries_appended_total",
			Help: "Audit entries appended durably.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fabric_audit_append_batch_size",
			Help:    "Appends written by one audit log transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fabric_audit_append_commit_seconds",
			Help:    "Time to append one batch of audit entries durably.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_append_conflicts_total",
			Help: "Audit batches retried because another process appended to the same log first.",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_checkpoints_total",
			Help: "Audit checkpoints signed (Ed25519 and ML-DSA-65) and stored.",
		}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_checkpoint_publish_failures_total",
			Help: "Audit checkpoints stored but not appended to the checkpoint file.",
		}),
		witnessFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_checkpoint_witness_failures_total",
			Help: "Audit checkpoints the witness did not cosign (unreachable or refused).",
		}),
		tampered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_audit_verify_failures_total",
			Help: "Audit log verifications that found a log not matching its hashes or signed checkpoints.",
		}),
	}
	for _, c := range []prometheus.Collector{m.appended, m.batch, m.commit, m.conflicts, m.checkpoints, m.publishFailures, m.witnessFailures, m.tampered} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("auditlog: register metrics: %w", err)
		}
	}
	return m, nil
}
