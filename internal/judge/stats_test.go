package judge

import (
	"math"
	"slices"
	"testing"
)

func nan() float64 { return math.NaN() }

// TestIQRDetector ports the IQRDetector cases of Kayenta's DetectorSuite
// (factor 1.5, without reduceSensitivity, i.e. plain Tukey fences).
func TestIQRDetector(t *testing.T) {
	tukey := func(data []float64) []bool {
		sorted := slices.Sorted(slices.Values(data))
		p25, p75 := percentileR7(sorted, 25), percentileR7(sorted, 75)
		lo, hi := p25-1.5*(p75-p25), p75+1.5*(p75-p25)
		out := make([]bool, len(data))
		for i, v := range data {
			out[i] = v < lo || v > hi
		}
		return out
	}
	nist := []float64{30, 171, 184, 201, 212, 250, 265, 270, 272, 289, 305, 306, 322, 322, 336, 346,
		351, 370, 390, 404, 409, 411, 436, 437, 439, 441, 444, 448, 451, 453, 470, 480,
		482, 487, 494, 495, 499, 503, 514, 521, 522, 527, 548, 550, 559, 560, 570, 572,
		574, 578, 585, 592, 592, 607, 616, 618, 621, 629, 637, 638, 640, 656, 668, 707,
		709, 719, 737, 739, 752, 758, 766, 792, 792, 794, 802, 818, 830, 832, 843, 858,
		860, 869, 918, 925, 953, 991, 1000, 1005, 1068, 1441}
	nistTruth := make([]bool, len(nist))
	nistTruth[len(nist)-1] = true
	cases := []struct {
		name  string
		data  []float64
		truth []bool
	}{
		{"IQR Detection", []float64{21, 23, 24, 25, 50, 29, 23, 21}, []bool{false, false, false, false, true, false, false, false}},
		{"IQR Detect Two Sided", []float64{1, 1, 1, 5, -1, -1, -1, -5}, []bool{false, false, false, true, false, false, false, true}},
		{"IQR Empty Data", nil, []bool{}},
		{"IQR NIST Test", nist, nistTruth},
	}
	for _, tc := range cases {
		if got := tukey(tc.data); !slices.Equal(got, tc.truth) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.truth)
		}
	}
}

func TestRemoveOutliersReducedSensitivity(t *testing.T) {
	// 11 samples around 100 and one at 10000: the fence is max(P99, Q3+3·IQR),
	// so the spike goes and the rest stays.
	data := []float64{99, 100, 101, 98, 102, 100, 99, 101, 100, 100, 10000, 99}
	kept, dropped := removeOutliers(data, 3)
	if dropped != 1 || slices.Contains(kept, 10000) || len(kept) != 11 {
		t.Fatalf("kept %v dropped %d", kept, dropped)
	}
	// A sample that is merely the largest is kept: the P1/P99 widening.
	kept, dropped = removeOutliers([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 3)
	if dropped != 0 || len(kept) != 10 {
		t.Fatalf("uniform data lost %d samples", dropped)
	}
	if kept, dropped := removeOutliers(nil, 3); len(kept) != 0 || dropped != 0 {
		t.Fatal("empty input")
	}
}

func TestPercentileR7(t *testing.T) {
	s := []float64{1, 2, 3, 4}
	for _, c := range []struct{ p, want float64 }{{25, 1.75}, {50, 2.5}, {75, 3.25}, {100, 4}, {1, 1.03}} {
		if got := percentileR7(s, c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("P%v = %v, want %v", c.p, got, c.want)
		}
	}
	if !math.IsNaN(percentileR7(nil, 50)) || percentileR7([]float64{7}, 99) != 7 {
		t.Error("edge cases")
	}
}

func TestEffectSizes(t *testing.T) {
	// Kayenta's StatisticSuite-style checks: CLES of disjoint samples is 1
	// or 0, of identical samples 0.5; the mean ratio is NaN at a zero mean.
	if got := cles([]float64{10, 11}, []float64{1, 2}); got != 1 {
		t.Errorf("cles disjoint high = %v", got)
	}
	if got := cles([]float64{1, 2}, []float64{10, 11}); got != 0 {
		t.Errorf("cles disjoint low = %v", got)
	}
	if got := cles([]float64{1, 2, 3}, []float64{1, 2, 3}); got != 0.5 {
		t.Errorf("cles identical = %v", got)
	}
	if got := cles([]float64{1, 1, 2}, []float64{1, 3}); math.Abs(got-(0.5+0+0.5+0+1+0)/6) > 1e-12 {
		t.Errorf("cles ties = %v", got)
	}
	if !math.IsNaN(meanRatio(1, 0)) || !math.IsNaN(meanRatio(0, 1)) || meanRatio(3, 2) != 1.5 {
		t.Error("meanRatio")
	}
	for n := 2; n <= 7; n++ {
		if got := mean(repeat(math.MaxFloat64, n)); !finite(got) || math.Abs(got/math.MaxFloat64-1) > 1e-15 {
			t.Errorf("mean of %d MaxFloat64 = %v", n, got)
		}
	}
}

// TestMannWhitneyPSymmetric: go-moremath alone gives 0.56 for (a, b) and
// 0.48 for (b, a) here; mannWhitneyP gives one figure.
func TestMannWhitneyPSymmetric(t *testing.T) {
	a := []float64{1, 1, 2, 3, 3, 3}
	b := []float64{2, 2, 3, 4}
	p1, p2 := mannWhitneyP(a, b), mannWhitneyP(b, a)
	if p1 != p2 || p1 <= 0 || p1 > 1 {
		t.Fatalf("p %v vs %v", p1, p2)
	}
	if p := mannWhitneyP([]float64{1, 1, 1}, []float64{1, 1}); p != 1 {
		t.Fatalf("all equal: p %v", p)
	}
	// Exact, no ties: 4 vs 4 fully separated, p = 2/70.
	if p := mannWhitneyP([]float64{5, 6, 7, 8}, []float64{1, 2, 3, 4}); math.Abs(p-2.0/70) > 1e-12 {
		t.Fatalf("separated: p %v", p)
	}
}
