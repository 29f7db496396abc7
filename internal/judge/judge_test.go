package judge

import (
	"math"
	"strings"
	"testing"

	"github.com/aclements/go-moremath/stats"
)

// normalQuantiles is a deterministic "sample" of N(mu, sd): its n quantiles.
func normalQuantiles(n int, mu, sd float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = mu + sd*stats.StdNormal.InvCDF((float64(i)+0.5)/float64(n))
	}
	return out
}

func shifted(xs []float64, by float64) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = v + by
	}
	return out
}

func scaled(xs []float64, by float64) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = v * by
	}
	return out
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

var (
	base100 = normalQuantiles(30, 100, 5)
	noisy   = normalQuantiles(50, 100, 10)
)

// TestMetricReference is the table of reference cases for one metric,
// written from Kayenta's rules (MannWhitneyClassifier.classify) with this
// package's defaults: confidence 0.98, tolerance 0.25.
func TestMetricReference(t *testing.T) {
	cases := []struct {
		name   string
		metric Metric
		series Series
		absent bool
		want   Classification
		reason []string // substrings the Reason must contain
	}{
		{"clear increase, direction either", Metric{}, Series{base100, shifted(base100, 80)}, false, High,
			[]string{"ratio 1.80", "Mann-Whitney p=", "< 0.02", "98% CI", "High"}},
		{"clear decrease, direction either", Metric{}, Series{base100, shifted(base100, -50)}, false, Low, []string{"Low"}},
		{"increase, direction increase", Metric{Direction: Increase}, Series{base100, shifted(base100, 80)}, false, High, nil},
		{"decrease, direction increase: a lower latency passes", Metric{Direction: Increase}, Series{base100, shifted(base100, -50)}, false, Pass, []string{"direction is increase"}},
		{"decrease, direction decrease", Metric{Direction: Decrease}, Series{base100, shifted(base100, -50)}, false, Low, nil},
		{"increase, direction decrease: more throughput passes", Metric{Direction: Decrease}, Series{base100, shifted(base100, 80)}, false, Pass, []string{"direction is decrease"}},
		{"no change", Metric{}, Series{base100, normalQuantiles(29, 100, 5)}, false, Pass, []string{"does not clear"}},
		{"identical data, any order", Metric{}, Series{base100, reversed(base100)}, false, Pass, []string{"identical"}},
		{"constant identical data", Metric{}, Series{repeat(7, 10), repeat(7, 10)}, false, Pass, []string{"identical"}},
		{"one value everywhere, different counts", Metric{}, Series{repeat(7, 10), repeat(7, 4)}, false, Pass, []string{"same value"}},
		{"constant but different data: High without noise", Metric{}, Series{repeat(1, 5), repeat(10, 5)}, false, High, []string{"shift 9 (98% CI 9 to 9)"}},
		{"constant but different data: Low", Metric{}, Series{repeat(10, 5), repeat(1, 5)}, false, Low, nil},
		{"constant zero baseline: ratio undefined does not block", Metric{AllowedIncrease: 1.2}, Series{repeat(0, 5), []float64{54.9, 54.5, 55.1, 55.6, 57.4}}, false, High, []string{"ratio undefined"}},
		{"majority ties: one spike", Metric{}, Series{repeat(1, 5), []float64{1, 1, 1, 1, 10}}, false, Pass, nil},
		{"ties: two-valued data, clear shift", Metric{}, Series{
			[]float64{1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1},
			[]float64{2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2}}, false, High, nil},
		{"mostly zero on both sides, canary more often non-zero", Metric{}, Series{
			append(repeat(0, 40), 1, 2),
			append(repeat(0, 30), repeat(5, 12)...)}, false, High, []string{"shift 0 (98% CI 0 to"}},
		{"significant but inside Kayenta's tolerance", Metric{}, Series{noisy, shifted(noisy, 5.5)}, false, Pass, []string{"p=0.0085 < 0.02", "does not clear ±1.375"}},
		{"same data outside the tolerance", Metric{}, Series{noisy, shifted(noisy, 7)}, false, High, nil},
		{"a wider tolerance keeps it Pass", Metric{Tolerance: 0.5}, Series{noisy, shifted(noisy, 7)}, false, Pass, nil},
		{"significant, effect size below the allowed increase", Metric{AllowedIncrease: 1.2}, Series{base100, shifted(base100, 10)}, false, Pass, []string{"ratio 1.10", "allowed increase 1.2"}},
		{"significant, effect size above the allowed increase", Metric{AllowedIncrease: 1.2}, Series{base100, shifted(base100, 30)}, false, High, nil},
		{"significant, effect size above the allowed decrease", Metric{AllowedDecrease: 0.8}, Series{base100, shifted(base100, -10)}, false, Pass, []string{"allowed decrease 0.8"}},
		{"cles: complete separation is 1", Metric{EffectSizeMeasure: CLES, AllowedIncrease: 0.9}, Series{base100, shifted(base100, 80)}, false, High, nil},
		{"cles: overlap below the allowed increase", Metric{EffectSizeMeasure: CLES, AllowedIncrease: 0.99}, Series{base100, shifted(base100, 5)}, false, Pass, []string{"cles"}},
		{"NaN removed", Metric{}, Series{append([]float64{math.NaN()}, base100...), append(shifted(base100, 80), math.NaN(), math.Inf(1))}, false, High, nil},
		{"only NaN on one side: Nodata", Metric{}, Series{base100, []float64{math.NaN(), math.NaN()}}, false, Nodata, []string{"no data", "canary 0 of 2"}},
		{"only NaN, replaced by 0; too few samples for 98%: interval clamped (as Kayenta)", Metric{NaNStrategy: NaNReplace, Direction: Decrease}, Series{base100, []float64{math.NaN(), math.NaN()}}, false, Low, []string{"p=0.022 >= 0.02", "clamped to the range of the differences: 2 and 30 samples are too few for 98%"}},
		{"metric absent, nodata ignore", Metric{}, Series{}, true, Nodata, []string{"metric absent"}},
		{"metric absent, nodata fail", Metric{NodataPolicy: NodataFail}, Series{}, true, NodataFailMetric, nil},
		{"empty canary, nodata fail", Metric{NodataPolicy: NodataFail}, Series{base100, nil}, false, NodataFailMetric, nil},
		{"empty canary, nodata fail, critical: Nodata (Kayenta)", Metric{NodataPolicy: NodataFail, Critical: true}, Series{base100, nil}, false, Nodata, []string{"(critical)"}},
		{"empty canary, NaN replace: still Nodata (Kayenta would Pass)", Metric{NaNStrategy: NaNReplace}, Series{base100, nil}, false, Nodata, nil},
		{"critical High", Metric{Critical: true}, Series{base100, shifted(base100, 80)}, false, High, []string{"High (critical)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.metric
			m.Name = "latency_p99"
			r := classifyMetric(m, tc.series, !tc.absent, DefaultConfidence)
			if r.Classification != tc.want {
				t.Fatalf("got %s, want %s\n%s", r.Classification, tc.want, r.Reason)
			}
			if !strings.HasPrefix(r.Reason, "latency_p99: ") {
				t.Errorf("reason does not name the metric: %s", r.Reason)
			}
			for _, s := range tc.reason {
				if !strings.Contains(r.Reason, s) {
					t.Errorf("reason lacks %q: %s", s, r.Reason)
				}
			}
			if r.CriticalFailure != (m.Critical && r.Classification != Pass) {
				t.Errorf("critical failure %v", r.CriticalFailure)
			}
			checkFinite(t, r)
			t.Log(r.Reason)
		})
	}
}

func reversed(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[len(xs)-1-i] = v
	}
	return out
}

func checkFinite(t testing.TB, r MetricResult) {
	t.Helper()
	for name, f := range map[string]float64{"BaselineMean": r.BaselineMean, "CanaryMean": r.CanaryMean, "Ratio": r.Ratio,
		"EffectSize": r.EffectSize, "PValue": r.PValue, "LowerCI": r.LowerCI, "UpperCI": r.UpperCI, "Shift": r.Shift} {
		if !finite(f) {
			t.Errorf("%s: %s = %v is not finite", r.Name, name, f)
		}
	}
	if r.PValue < 0 || r.PValue > 1 {
		t.Errorf("%s: p-value %v", r.Name, r.PValue)
	}
	if r.LowerCI > r.UpperCI {
		t.Errorf("%s: CI [%v, %v]", r.Name, r.LowerCI, r.UpperCI)
	}
}

func TestConstantDifferentIsDeterministic(t *testing.T) {
	// Kayenta adds random Gaussian noise here; this package needs none.
	first := classifyMetric(Metric{Name: "m"}, Series{repeat(3, 4), repeat(4, 4)}, true, DefaultConfidence)
	for range 50 {
		r := classifyMetric(Metric{Name: "m"}, Series{repeat(3, 4), repeat(4, 4)}, true, DefaultConfidence)
		if r != first {
			t.Fatalf("%+v != %+v", r, first)
		}
	}
	if first.Classification != High || first.Shift != 1 {
		t.Fatalf("%+v", first)
	}
}

func TestOutlierRemoval(t *testing.T) {
	// A canary 10% above the baseline plus one wild sample. The wild
	// sample drags the mean ratio past the allowed increase; with the IQR
	// filter it is dropped and the ratio stays within it.
	canary := append(shifted(base100, 10), 5000)
	m := Metric{Name: "rps", AllowedIncrease: 1.2}
	r := classifyMetric(m, Series{base100, canary}, true, DefaultConfidence)
	if r.Classification != High || r.CanaryDropped != 0 {
		t.Fatalf("without outlier removal: %s, dropped %d\n%s", r.Classification, r.CanaryDropped, r.Reason)
	}
	m.OutlierRemoval = true
	r = classifyMetric(m, Series{base100, canary}, true, DefaultConfidence)
	if r.Classification != Pass || r.CanaryDropped != 1 || r.CanaryN != len(base100) || r.BaselineDropped != 0 {
		t.Fatalf("with outlier removal: %s, dropped %d, n %d\n%s", r.Classification, r.CanaryDropped, r.CanaryN, r.Reason)
	}
}

func TestNaNCounts(t *testing.T) {
	r := classifyMetric(Metric{Name: "m"}, Series{Baseline: []float64{1, math.NaN(), 2, math.Inf(-1)}, Canary: []float64{1, 2}}, true, DefaultConfidence)
	if r.BaselineDropped != 2 || r.BaselineN != 2 || r.Classification != Pass {
		t.Fatalf("%+v", r)
	}
	r = classifyMetric(Metric{Name: "m", NaNStrategy: NaNReplace}, Series{Baseline: []float64{1, math.NaN()}, Canary: []float64{1, 0}}, true, DefaultConfidence)
	if r.BaselineDropped != 0 || r.BaselineN != 2 || !strings.Contains(r.Reason, "identical") {
		t.Fatalf("%+v", r)
	}
}

// TestJudgeReference: whole-run cases, scores and verdicts.
func TestJudgeReference(t *testing.T) {
	up := Series{base100, shifted(base100, 80)}
	same := Series{base100, normalQuantiles(29, 100, 5)}
	cases := []struct {
		name    string
		config  Config
		data    map[string]Series
		score   float64
		verdict Verdict
		reason  string
		groups  map[string]float64
	}{
		{"all pass", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}}}, map[string]Series{"a": same, "b": same}, 100, VerdictPass, "score 100.00 >= pass 95.00", nil},
		{"one of two High", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}}}, map[string]Series{"a": same, "b": up}, 50, VerdictFail, "< marginal", nil},
		{"critical High forces 0", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d", Critical: true}}},
			map[string]Series{"a": same, "b": same, "c": same, "d": up}, 0, VerdictFail, "Canary Failed: critical metric not Pass: d:", nil},
		{"critical metric missing forces 0", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}, {Name: "c", Critical: true}}},
			map[string]Series{"a": same, "b": same}, 0, VerdictFail, "c: no data (metric absent): Nodata (critical)", nil},
		{"critical Pass scores normally", Config{Metrics: []Metric{{Name: "a", Critical: true}, {Name: "b"}}},
			map[string]Series{"a": same, "b": up}, 50, VerdictFail, "score 50.00", nil},
		{"every metric missing, ignore policy: never PASS", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}}}, nil, 0, VerdictFail, "2 of 2 metrics (50% or more) returned NODATA", nil},
		{"every metric missing, fail policy: never PASS", Config{Metrics: []Metric{{Name: "a", NodataPolicy: NodataFail}, {Name: "b", NodataPolicy: NodataFail}}}, nil, 0, VerdictFail, "2 scored metrics: 2 NodataFailMetric", nil},
		{"every metric empty after NaN removal", Config{Metrics: []Metric{{Name: "a"}}}, map[string]Series{"a": {[]float64{math.NaN()}, []float64{math.NaN()}}}, 0, VerdictFail, "NODATA", nil},
		{"no data, some Nodata some NodataFailMetric, low pass score: still FAIL (found by FuzzJudge)", Config{
			Metrics:   []Metric{{Name: "a", Group: "x"}, {Name: "b", NodataPolicy: NodataFail}, {Name: "c", NodataPolicy: NodataFail}, {Name: "d", NodataPolicy: NodataFail}},
			PassScore: 50, MarginalScore: 10}, nil, 0, VerdictFail, "Canary Failed: no metric has data (4 scored metrics: 3 NodataFailMetric, 1 Nodata)", nil},
		{"half Nodata fails (Kayenta's NODATA_THRESHOLD)", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}}}, map[string]Series{"a": same}, 0, VerdictFail, "1 of 2 metrics", nil},
		{"a third Nodata, ignored", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}, {Name: "c"}}}, map[string]Series{"a": same, "b": same}, 100, VerdictPass, "3 scored metrics: 2 Pass, 1 Nodata", nil},
		{"a third Nodata, failing", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}, {Name: "c", NodataPolicy: NodataFail}}}, map[string]Series{"a": same, "b": same}, 66.67, VerdictFail, "", nil},
		{"muted High is not scored", Config{Metrics: []Metric{{Name: "a"}, {Name: "b", Muted: true, Critical: true}}}, map[string]Series{"a": same, "b": up}, 100, VerdictPass, "", nil},
		{"group weights 80/20, the light group fails", Config{
			Metrics:      []Metric{{Name: "a", Group: "latency"}, {Name: "b", Group: "latency"}, {Name: "c", Group: "errors"}},
			GroupWeights: map[string]float64{"latency": 80, "errors": 20}},
			map[string]Series{"a": same, "b": same, "c": up}, 80, VerdictMarginal, "score 80.00 < pass 95.00 but >= marginal 75.00",
			map[string]float64{"latency": 100, "errors": 0}},
		{"group weights 80/20, the heavy group half fails", Config{
			Metrics:      []Metric{{Name: "a", Group: "latency"}, {Name: "b", Group: "latency"}, {Name: "c", Group: "errors"}},
			GroupWeights: map[string]float64{"latency": 80, "errors": 20}},
			map[string]Series{"a": same, "b": up, "c": same}, 60, VerdictFail, "",
			map[string]float64{"latency": 50, "errors": 100}},
		{"equal weights by default", Config{Metrics: []Metric{{Name: "a", Group: "x"}, {Name: "b", Group: "y"}, {Name: "c", Group: "y"}}},
			map[string]Series{"a": same, "b": up, "c": same}, 75, VerdictMarginal, "", map[string]float64{"x": 100, "y": 50}},
		{"group with only Nodata counts 100", Config{Metrics: []Metric{{Name: "a", Group: "x"}, {Name: "b", Group: "y"}, {Name: "c", Group: "y"}}},
			map[string]Series{"b": same, "c": same}, 100, VerdictPass, "", map[string]float64{"x": 100, "y": 100}},
		{"custom thresholds", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}}, PassScore: 70, MarginalScore: 50},
			map[string]Series{"a": same, "b": same, "c": same, "d": up}, 75, VerdictPass, "", nil},
		{"custom thresholds, marginal", Config{Metrics: []Metric{{Name: "a"}, {Name: "b"}}, PassScore: 70, MarginalScore: 50},
			map[string]Series{"a": same, "b": up}, 50, VerdictMarginal, "", nil},
		{"default group", Config{Metrics: []Metric{{Name: "a"}}}, map[string]Series{"a": same}, 100, VerdictPass, "", map[string]float64{DefaultGroup: 100}},
		{"weight keyed \"\" is the default group's", Config{Metrics: []Metric{{Name: "a"}, {Name: "b", Group: "x"}}, GroupWeights: map[string]float64{"": 90}},
			map[string]Series{"a": same, "b": up}, 90, VerdictMarginal, "", map[string]float64{DefaultGroup: 100, "x": 0}},
		{"unknown series are ignored", Config{Metrics: []Metric{{Name: "a"}}}, map[string]Series{"a": same, "zzz": up}, 100, VerdictPass, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Judge(tc.config, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if r.Score != tc.score || r.Verdict != tc.verdict {
				t.Fatalf("score %v %s, want %v %s\n%s", r.Score, r.Verdict, tc.score, tc.verdict, r.Reason)
			}
			if !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", r.Reason, tc.reason)
			}
			for g, want := range tc.groups {
				if got := r.GroupScores[g]; math.Abs(got-want) > 1e-9 {
					t.Errorf("group %s score %v, want %v", g, got, want)
				}
			}
			if len(r.Metrics) != len(tc.config.Metrics) {
				t.Fatalf("%d results for %d metrics", len(r.Metrics), len(tc.config.Metrics))
			}
			for i, m := range r.Metrics {
				if m.Name != tc.config.Metrics[i].Name {
					t.Errorf("result %d is %s, want config order", i, m.Name)
				}
				checkFinite(t, m)
			}
			t.Log(r.Reason)
		})
	}
}

func TestExampleReason(t *testing.T) {
	r, err := Judge(Config{Metrics: []Metric{{Name: "latency_p99", Direction: Increase}}},
		map[string]Series{"latency_p99": {Baseline: base100, Canary: scaled(base100, 1.8)}})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Metrics[0].Reason
	want := "latency_p99: canary mean 180 vs baseline mean 100 (ratio 1.80), Mann-Whitney p="
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, ": High") {
		t.Fatalf("reason %q", got)
	}
	t.Log(got)
	t.Log(r.Reason)
}
