package judge

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// eighths draws n values on a grid of 1/8 in [lo, lo+span): sums and
// differences of such values are exact in float64, so the symmetry
// properties below hold exactly, and the grid makes ties common.
func eighths(r *rand.Rand, n int, lo, span float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = lo + float64(r.IntN(int(span*8)))/8
	}
	return out
}

func randomCase(r *rand.Rand) (Config, map[string]Series) {
	n := 1 + r.IntN(5)
	c := Config{Confidence: []float64{0, 0.9, 0.95, 0.99}[r.IntN(4)]}
	data := map[string]Series{}
	for i := range n {
		name := string(rune('a' + i))
		c.Metrics = append(c.Metrics, Metric{
			Name:           name,
			Group:          []string{"", "latency", "errors"}[r.IntN(3)],
			Critical:       r.IntN(4) == 0,
			OutlierRemoval: r.IntN(2) == 0,
		})
		if r.IntN(6) == 0 {
			continue // absent: Nodata
		}
		shift := []float64{0, 0, 0.5, 3, -3}[r.IntN(5)]
		data[name] = Series{
			Baseline: eighths(r, 1+r.IntN(40), 10, 4),
			Canary:   eighths(r, 1+r.IntN(40), 10+shift, 4),
		}
	}
	return c, data
}

// TestPropertyDeterministic: the same input gives the same Result, and the
// order of the samples does not matter (only means may differ in the last
// bits, since they are sums).
func TestPropertyDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 300 {
		c, data := randomCase(r)
		a, err := Judge(c, data)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Judge(c, data)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("case %d: two runs differ", i)
		}
		shuffled := map[string]Series{}
		for k, s := range data {
			shuffled[k] = Series{Baseline: shuffle(r, s.Baseline), Canary: shuffle(r, s.Canary)}
		}
		s, _ := Judge(c, shuffled)
		if s.Score != a.Score || s.Verdict != a.Verdict {
			t.Fatalf("case %d: shuffled samples changed the outcome", i)
		}
		for j := range a.Metrics {
			x, y := a.Metrics[j], s.Metrics[j]
			if x.Classification != y.Classification || x.Shift != y.Shift || x.LowerCI != y.LowerCI ||
				x.UpperCI != y.UpperCI || x.PValue != y.PValue || math.Abs(x.CanaryMean-y.CanaryMean) > 1e-9 {
				t.Fatalf("case %d metric %s: %+v vs %+v", i, x.Name, x, y)
			}
		}
	}
}

func shuffle(r *rand.Rand, xs []float64) []float64 {
	out := append([]float64(nil), xs...)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// TestPropertySwapFlips: exchanging canary and baseline turns High into Low
// and back, keeps Pass and Nodata, and negates the shift and its interval.
// (The p-value holds only because mannWhitneyP orders go-moremath's
// samples; see there.)
func TestPropertySwapFlips(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	flip := map[Classification]Classification{High: Low, Low: High, Pass: Pass, Nodata: Nodata}
	seen := map[Classification]int{}
	for i := range 2000 {
		shift := []float64{0, 0.25, 1, 4, -1, -4}[r.IntN(6)]
		b := eighths(r, 1+r.IntN(30), 10, 3)
		cn := eighths(r, 1+r.IntN(30), 10+shift, 3)
		dir := []Direction{Either, Increase, Decrease}[r.IntN(3)]
		swappedDir := map[Direction]Direction{Either: Either, Increase: Decrease, Decrease: Increase}[dir]
		x := classifyMetric(Metric{Name: "m", Direction: dir}, Series{Baseline: b, Canary: cn}, true, DefaultConfidence)
		y := classifyMetric(Metric{Name: "m", Direction: swappedDir}, Series{Baseline: cn, Canary: b}, true, DefaultConfidence)
		seen[x.Classification]++
		if y.Classification != flip[x.Classification] {
			t.Fatalf("case %d (%s): %s swapped to %s\n%s\n%s", i, dir, x.Classification, y.Classification, x.Reason, y.Reason)
		}
		if x.Shift != -y.Shift || x.LowerCI != -y.UpperCI || x.UpperCI != -y.LowerCI || math.Abs(x.PValue-y.PValue) > 1e-12 {
			t.Fatalf("case %d: shift %v [%v, %v] p %v swapped to %v [%v, %v] p %v", i,
				x.Shift, x.LowerCI, x.UpperCI, x.PValue, y.Shift, y.LowerCI, y.UpperCI, y.PValue)
		}
	}
	if seen[High] == 0 || seen[Low] == 0 || seen[Pass] == 0 {
		t.Fatalf("the generator did not cover every class: %v", seen)
	}
	t.Logf("classes seen: %v", seen)
}

// TestPropertyCriticalNeverPasses: on random runs, a critical metric that is
// not Pass always means score 0 and FAIL; a run with no data never passes.
func TestPropertyCriticalNeverPasses(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 500 {
		c, data := randomCase(r)
		res, err := Judge(c, data)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, c, res)
		if i%5 == 0 {
			none, _ := Judge(c, nil)
			if none.Verdict == VerdictPass {
				t.Fatalf("case %d: PASS with no data at all", i)
			}
		}
	}
}

// checkInvariants are the properties every Result must have.
func checkInvariants(t testing.TB, c Config, res Result) {
	t.Helper()
	if !(res.Score >= 0 && res.Score <= 100) {
		t.Fatalf("score %v out of 0..100", res.Score)
	}
	switch res.Verdict {
	case VerdictPass, VerdictMarginal, VerdictFail:
	default:
		t.Fatalf("verdict %q", res.Verdict)
	}
	if len(res.Metrics) != len(c.Metrics) {
		t.Fatalf("%d results for %d metrics", len(res.Metrics), len(c.Metrics))
	}
	allNodata := true
	for _, m := range res.Metrics {
		checkFinite(t, m)
		switch m.Classification {
		case Pass, High, Low, Nodata, NodataFailMetric:
		default:
			t.Fatalf("classification %q", m.Classification)
		}
		if m.Critical && !m.Muted && m.Classification != Pass {
			if res.Verdict == VerdictPass || res.Score != 0 || res.Verdict != VerdictFail {
				t.Fatalf("critical %s is %s but the run is %s with %v", m.Name, m.Classification, res.Verdict, res.Score)
			}
		}
		if !m.Muted && m.Classification != Nodata && m.Classification != NodataFailMetric {
			allNodata = false
		}
		if m.Reason == "" {
			t.Fatalf("%s: empty reason", m.Name)
		}
	}
	if allNodata && res.Verdict == VerdictPass {
		t.Fatalf("PASS although every metric is without data")
	}
	for g, s := range res.GroupScores {
		if !(s >= 0 && s <= 100) {
			t.Fatalf("group %s score %v", g, s)
		}
	}
	if res.Reason == "" {
		t.Fatal("empty reason")
	}
}
