package policy

import "testing"

var (
	benchDecision Decision
	benchString   string
)

var benchInput = Input{
	TenantID:         "t1",
	Action:           "scale",
	Target:           "serviceX",
	DeclaredImpact:   "medium",
	Regions:          []string{"eu-west", "us-east"},
	Parameters:       map[string]any{"replicas": 12, "image": "svc:1.2.3", "spec": map[string]any{"cpu": "500m"}},
	ReplicaDelta:     4,
	CostDeltaMonthly: 1200,
	BlastRadius:      0.4,
}

// BenchmarkEvaluate is one Evaluate of the built-in policy: 8 impact rules,
// 1 quorum rule, approval_when and dry_run_when. Compare with
// BenchmarkFloorMapLookup, the cost of the cheapest conceivable policy (a
// map lookup).
func BenchmarkEvaluate(b *testing.B) {
	e := Default()
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Evaluate(benchInput)
		if err != nil {
			b.Fatal(err)
		}
		benchDecision = d
	}
}

// BenchmarkFloorMapLookup is the floor: a per-tenant map access.
func BenchmarkFloorMapLookup(b *testing.B) {
	m := map[string]string{"t1": QuorumTwoThirds, "t2": QuorumMajority, "t3": QuorumUnanimous}
	b.ReportAllocs()
	for b.Loop() {
		benchString = m[benchInput.TenantID]
	}
}
