package composer

import (
	"testing"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
)

var (
	benchResp  *composerv1.ComposeResponse
	benchBytes []byte
)

// benchRequest is the spec's example with a little of everything: a target, two
// regions, hints and structured signals holding an address to redact.
func benchRequest(tb testing.TB) *composerv1.ComposeRequest {
	return &composerv1.ComposeRequest{
		TenantId: "t1", Context: "reduce cost of serviceX; owner ops@example.com", Target: "serviceX",
		Regions: []string{"eu-west", "us-east"}, MetricHints: map[string]float64{"cpu": 0.35, "error_rate": 0.001},
		Signals: mustStruct(tb, map[string]any{"owner": "ops@example.com", "ticket": "OPS-1234", "budget_usd": 1200.0}),
	}
}

// BenchmarkCompose measures one composition in process: validation, redaction, the
// simulated model, template selection, the coordinator's manifest check, canonical
// JSON, SHA256 and an ECDSA P-256 signature (which dominates).
// Compare with BenchmarkFloorCanonical: Compose canonicalises the manifest it signs,
// so it can never be cheaper than that.
func BenchmarkCompose(b *testing.B) {
	s, _ := newTestService(b, Deps{})
	ctx := tenantCtx("t1")
	req := benchRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.Compose(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		benchResp = r
	}
}

// BenchmarkFloorCanonical is the floor for BenchmarkCompose: canonical.Proto of the
// manifest Compose produces for the same request.
func BenchmarkFloorCanonical(b *testing.B) {
	s, _ := newTestService(b, Deps{})
	r, err := s.Compose(tenantCtx("t1"), benchRequest(b))
	if err != nil {
		b.Fatal(err)
	}
	m := r.GetManifest()
	b.ReportAllocs()
	for b.Loop() {
		raw, err := canonical.Proto(m)
		if err != nil {
			b.Fatal(err)
		}
		benchBytes = raw
	}
}
