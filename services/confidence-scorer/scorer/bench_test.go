package scorer

import (
	"testing"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
)

var (
	benchResp  *scorerv1.ScoreResponse
	benchBytes []byte
)

// BenchmarkScore measures the pure math of one score (posterior and its interval,
// combination, risk, cost, explanation, inputs hash) for the example: 7 of 8
// successes, a 4-of-5 vote, live metrics, a model verdict, two regions.
// Compare with BenchmarkFloorCanonical: Score hashes the canonical JSON of its inputs,
// so it can never be cheaper than that.
func BenchmarkScore(b *testing.B) {
	in := example()
	b.ReportAllocs()
	for b.Loop() {
		r, err := Score(in)
		if err != nil {
			b.Fatal(err)
		}
		benchResp = r
	}
}

// BenchmarkFloorCanonical is the floor for BenchmarkScore: canonical.Marshal of the
// same Inputs (the part of Score that is not the scorer's own arithmetic).
func BenchmarkFloorCanonical(b *testing.B) {
	in := example()
	b.ReportAllocs()
	for b.Loop() {
		raw, err := canonical.Marshal(in)
		if err != nil {
			b.Fatal(err)
		}
		benchBytes = raw
	}
}
