package judge

import (
	"math"
	"testing"
)

func TestHodgesLehmannKayentaReference(t *testing.T) {
	// kayenta-mannwhitney MannWhitneySuite: "Mann-Whitney Confidence Interval & Estimate".
	h := hodgesLehmann([]float64{10, 20, 30, 40}, []float64{1, 2, 3, 4}, 0.95)
	if h.estimate != 22.5 || h.lower != 6 || h.upper != 39 {
		t.Fatalf("got %+v, want estimate 22.5, CI [6, 39]", h)
	}
}

func TestJudgeBasic(t *testing.T) {
	c := Config{Metrics: []Metric{{Name: "latency_p99", Direction: Increase}, {Name: "err"}, {Name: "gone"}}}
	b := []float64{98, 101, 99, 100, 102, 97, 100, 103, 99, 101}
	cn := []float64{178, 181, 179, 180, 182, 177, 180, 183, 179, 181}
	r, err := Judge(c, map[string]Series{"latency_p99": {b, cn}, "err": {b, b}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Metrics[0].Classification != High || r.Metrics[1].Classification != Pass || r.Metrics[2].Classification != Nodata {
		t.Fatalf("classifications: %+v", r.Metrics)
	}
	if r.Score != 50 || r.Verdict != VerdictFail || math.IsNaN(r.Score) {
		t.Fatalf("score %v verdict %v", r.Score, r.Verdict)
	}
}
