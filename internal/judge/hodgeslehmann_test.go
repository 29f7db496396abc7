package judge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"testing"
)

// TestHodgesLehmannKayentaSuite checks the estimator and interval against the
// values of Kayenta's MannWhitneySuite, two of which were tied out with R's
// wilcox.test. Kayenta and R find the interval's ends by root-finding on a
// step function, Kayenta's BrentSolver to an absolute tolerance of 1e-4;
// this package returns the jump (a pairwise difference) itself, hence the
// tolerance 1e-4. (In the "Problem Case", whose samples differ by about
// 1e-8, Kayenta's figures are solver noise: this package's interval
// [-7.5e-8, 1.7e-9] is the exact one.)
func TestHodgesLehmannKayentaSuite(t *testing.T) {
	raw, err := os.ReadFile("testdata/kayenta_mannwhitney_suite.json")
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Cases []struct {
			Name                               string
			Canary, Baseline                   []float64
			Confidence, Lower, Upper, Estimate float64
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Cases) != 4 {
		t.Fatalf("%d cases", len(suite.Cases))
	}
	for _, c := range suite.Cases {
		h := hodgesLehmann(c.Canary, c.Baseline, c.Confidence)
		t.Logf("%s: estimate %v CI [%v, %v]; Kayenta %v [%v, %v]", c.Name, h.estimate, h.lower, h.upper, c.Estimate, c.Lower, c.Upper)
		tol := 1e-4
		if math.Abs(h.lower-c.Lower) > tol || math.Abs(h.upper-c.Upper) > tol || math.Abs(h.estimate-c.Estimate) > tol {
			t.Errorf("%s: got estimate %v CI [%v, %v], want %v [%v, %v]", c.Name, h.estimate, h.lower, h.upper, c.Estimate, c.Lower, c.Upper)
		}
	}
}

// bruteHL materialises every pairwise difference.
func bruteHL(x, y []float64, confidence float64) shiftEstimate {
	var d []float64
	for _, a := range x {
		for _, b := range y {
			d = append(d, a-b)
		}
	}
	sort.Float64s(d)
	n := len(d)
	est := d[n/2]
	if n%2 == 0 {
		est = d[n/2-1]/2 + d[n/2]/2
	}
	sx := slices.Sorted(slices.Values(x))
	sy := slices.Sorted(slices.Values(y))
	m, k := float64(len(x)), float64(len(y))
	N := m + k
	sigma := math.Sqrt(m * k / 12 * ((N + 1) - (tieTerm(sx)+tieTerm(sy))/(N*(N-1))))
	z := 0.0
	{
		// invert the normal CDF by bisection so the check does not share code
		lo, hi := 0.0, 10.0
		target := 1 - (1-confidence)/2
		for range 200 {
			mid := (lo + hi) / 2
			if 0.5*math.Erfc(-mid/math.Sqrt2) < target {
				lo = mid
			} else {
				hi = mid
			}
		}
		z = lo
	}
	kl := clampK(math.Ceil(float64(n)/2-z*sigma-0.5), n)
	ku := clampK(math.Ceil(float64(n)/2+z*sigma+0.5), n)
	return shiftEstimate{estimate: est, lower: d[kl-1], upper: d[ku-1]}
}

// TestHodgesLehmannMatchesBruteForce: the bisection over float bit patterns
// finds the same order statistics as sorting all m·n differences.
func TestHodgesLehmannMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		m, n := 1+r.IntN(30), 1+r.IntN(30)
		if i%10 == 0 { // large enough that kth bisects before collecting
			m, n = 100+r.IntN(200), 100+r.IntN(200)
		}
		gen := func(k int) []float64 {
			out := make([]float64, k)
			for j := range out {
				switch i % 3 {
				case 0:
					out[j] = r.NormFloat64()*10 + 100
				case 1:
					out[j] = float64(r.IntN(4)) // heavy ties
				default:
					out[j] = math.Exp(r.NormFloat64() * 3) // skewed, wide range
				}
			}
			return out
		}
		x, y := gen(m), gen(n)
		got := hodgesLehmann(x, y, 0.98)
		want := bruteHL(x, y, 0.98)
		if math.Abs(got.estimate-want.estimate) > 1e-9*math.Max(1, math.Abs(want.estimate)) || got.lower != want.lower || got.upper != want.upper {
			t.Fatalf("case %d (m=%d n=%d): got %+v, want %+v", i, m, n, got, want)
		}
		if got.lower > got.upper {
			t.Fatalf("case %d: lower %v > upper %v", i, got.lower, got.upper)
		}
	}
}

func TestHodgesLehmannExtremes(t *testing.T) {
	// Differences that overflow to ±Inf must not break the bisection.
	h := hodgesLehmann([]float64{math.MaxFloat64, math.MaxFloat64 / 2}, []float64{-math.MaxFloat64, 0}, 0.98)
	if math.IsNaN(h.estimate) || math.IsNaN(h.lower) || math.IsNaN(h.upper) || h.lower > h.upper {
		t.Fatalf("%+v", h)
	}
	// Constant samples: every difference is a-b.
	h = hodgesLehmann([]float64{5, 5, 5}, []float64{2, 2}, 0.98)
	if h.estimate != 3 || h.lower != 3 || h.upper != 3 {
		t.Fatalf("%+v", h)
	}
	// One sample each.
	h = hodgesLehmann([]float64{1}, []float64{4}, 0.98)
	if h.estimate != -3 || h.lower != -3 || h.upper != -3 {
		t.Fatalf("%+v", h)
	}
}

func TestOrderedKey(t *testing.T) {
	vals := []float64{math.Inf(-1), -math.MaxFloat64, -1, -math.SmallestNonzeroFloat64, 0, math.SmallestNonzeroFloat64, 1, math.MaxFloat64, math.Inf(1)}
	for i := 1; i < len(vals); i++ {
		if orderedKey(vals[i-1]) >= orderedKey(vals[i]) {
			t.Errorf("key order broken between %v and %v", vals[i-1], vals[i])
		}
	}
	for _, v := range vals {
		if fromOrderedKey(orderedKey(v)) != v {
			t.Errorf("round trip of %v", v)
		}
	}
}
