package composer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/decision-fabric/fabric/internal/redact"
)

// metrics are the composer's Prometheus series, registered on the Registerer passed in
// Deps (never the global registry).
type metrics struct {
	// compositions: manifests composed and signed, by template id.
	compositions *prometheus.CounterVec
	// redactions: values redacted from requests and model answers, by redact kind.
	redactions *prometheus.CounterVec
	// modelErrors: model suggestions that failed or timed out (composition went on
	// without them).
	modelErrors prometheus.Counter
}

// redactionKinds are the kinds exported with a zero value from the start.
var redactionKinds = []redact.Kind{
	redact.KindEmail, redact.KindPhone, redact.KindCard, redact.KindIBAN, redact.KindNationalID,
	redact.KindIPv4, redact.KindIPv6, redact.KindJWT, redact.KindBearer, redact.KindSecretAssignment,
	redact.KindURLCredentials, redact.KindSecret, redact.KindPIIField,
}

func newMetrics(reg prometheus.Registerer, templates []string) (*metrics, error) {
	m := &metrics{
		compositions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_composer_compositions_total",
			Help: "Manifests composed and signed, by template.",
		}, []string{"template"}),
		redactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_composer_redactions_total",
			Help: "Values redacted from compose requests and model answers, by kind (P1).",
		}, []string{"kind"}),
		modelErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fabric_composer_model_errors_total",
			Help: "Model suggestions that failed or timed out; the composition used the template's defaults.",
		}),
	}
	for _, c := range []prometheus.Collector{m.compositions, m.redactions, m.modelErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("composer: register metrics: %w", err)
		}
	}
	// Export zeros, so rate() works from the first composition.
	for _, t := range templates {
		m.compositions.WithLabelValues(t)
	}
	for _, k := range redactionKinds {
		m.redactions.WithLabelValues(string(k))
	}
	return m, nil
}
