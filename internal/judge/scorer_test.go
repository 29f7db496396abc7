package judge

import (
	"strings"
	"testing"
)

// TestKayentaScorerSuite ports Kayenta's ScorerSuite.scala (WeightedSumScorer):
// the summary score from classifications, groups and weights.
func TestKayentaScorerSuite(t *testing.T) {
	type m struct {
		group    string
		class    Classification
		critical bool
	}
	cases := []struct {
		name    string
		weights map[string]float64
		metrics []m
		want    float64
	}{
		{"single metric pass", nil, []m{{"test-group", Pass, false}}, 100},
		{"single metric fail", nil, []m{{"test-group", High, false}}, 0},
		{"single group nodata", nil, []m{{"test-group-nodata", Nodata, false}}, 0},
		{"two groups, one pass, one nodata", nil, []m{{"test-group-pass", Pass, false}, {"test-group-pass", Pass, false}, {"test-group-nodata", Nodata, false}}, 100},
		{"one group, two metrics", nil, []m{{"g", Pass, false}, {"g", High, false}}, 50},
		{"one group, three metrics", nil, []m{{"g", Pass, false}, {"g", High, false}, {"g", Low, false}}, 33.33},
		{"two groups, three metrics", map[string]float64{"group-1": 75, "group-2": 25}, []m{{"group-1", Pass, false}, {"group-1", Pass, false}, {"group-2", High, false}}, 75},
		{"two groups, three metrics (equal weight)", map[string]float64{"group-1": 50, "group-2": 50}, []m{{"group-1", Pass, false}, {"group-1", High, false}, {"group-2", High, false}}, 25},
		{"two groups, equal weight, one nodata", map[string]float64{"group-1": 50, "group-2": 50}, []m{{"group-1", Pass, false}, {"group-1", Nodata, false}, {"group-2", High, false}}, 50},
		{"one good (normal), one fail (critical)", nil, []m{{"g", Pass, false}, {"g", High, true}}, 0},
		{"one low (normal), one good (critical)", nil, []m{{"g", Low, false}, {"g", Pass, true}}, 50},
		{"one good (normal), one nodata (critical)", nil, []m{{"g", Pass, false}, {"g", Nodata, true}}, 0},
		{"two groups (unequal weight), four metrics", map[string]float64{"group1": 15, "group2": 85}, []m{{"group1", High, false}, {"group1", Low, false}, {"group1", Pass, false}, {"group2", High, false}}, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{GroupWeights: tc.weights}
			var results []MetricResult
			for i, x := range tc.metrics {
				name := "m" + string(rune('a'+i))
				c.Metrics = append(c.Metrics, Metric{Name: name, Group: x.group, Critical: x.critical})
				results = append(results, MetricResult{Name: name, Group: x.group, Classification: x.class,
					Critical: x.critical, CriticalFailure: x.critical && x.class != Pass})
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got := score(c, results)
			if got.Score != tc.want {
				t.Fatalf("score %v, want %v (%s)", got.Score, tc.want, got.Reason)
			}
			if got.Score == 0 && got.Verdict != VerdictFail {
				t.Fatalf("score 0 gave %s", got.Verdict)
			}
		})
	}
}

func TestGroupWeights(t *testing.T) {
	groups := map[string]bool{"a": true, "b": true, "c": true}
	cases := []struct {
		name       string
		configured map[string]float64
		want       map[string]float64
	}{
		{"none: equal", nil, map[string]float64{"a": 100.0 / 3, "b": 100.0 / 3, "c": 100.0 / 3}},
		{"some: the rest share the remainder (Kayenta)", map[string]float64{"a": 50}, map[string]float64{"a": 50, "b": 25, "c": 25}},
		{"all, summing to 100 (Kayenta)", map[string]float64{"a": 50, "b": 30, "c": 20}, map[string]float64{"a": 50, "b": 30, "c": 20}},
		{"all, relative", map[string]float64{"a": 2, "b": 1, "c": 1}, map[string]float64{"a": 50, "b": 25, "c": 25}},
	}
	for _, tc := range cases {
		got := groupWeights(tc.configured, groups)
		for g, w := range tc.want {
			if d := got[g] - w; d > 1e-9 || d < -1e-9 {
				t.Errorf("%s: group %s weight %v, want %v", tc.name, g, got[g], w)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Metric{Name: "a", Group: "g"}
	cases := []struct {
		name string
		c    Config
		want string // "" = valid
	}{
		{"minimal", Config{Metrics: []Metric{{Name: "a"}}}, ""},
		{"no metrics", Config{}, "no metrics"},
		{"unnamed", Config{Metrics: []Metric{{}}}, "no name"},
		{"duplicate", Config{Metrics: []Metric{ok, ok}}, "twice"},
		{"direction", Config{Metrics: []Metric{{Name: "a", Direction: "up"}}}, "direction"},
		{"nodata policy", Config{Metrics: []Metric{{Name: "a", NodataPolicy: "maybe"}}}, "nodata policy"},
		{"nan strategy", Config{Metrics: []Metric{{Name: "a", NaNStrategy: "keep"}}}, "NaN strategy"},
		{"measure", Config{Metrics: []Metric{{Name: "a", EffectSizeMeasure: "cohen"}}}, "effect size measure"},
		{"negative tolerance", Config{Metrics: []Metric{{Name: "a", Tolerance: -1}}}, "tolerance"},
		{"cles above 1", Config{Metrics: []Metric{{Name: "a", EffectSizeMeasure: CLES, AllowedIncrease: 1.5}}}, "cles"},
		{"all muted", Config{Metrics: []Metric{{Name: "a", Muted: true}}}, "muted"},
		{"confidence 1", Config{Metrics: []Metric{ok}, Confidence: 1}, "confidence"},
		{"confidence NaN", Config{Metrics: []Metric{ok}, Confidence: nan()}, "confidence"},
		{"pass above 100", Config{Metrics: []Metric{ok}, PassScore: 101}, "0..100"},
		{"marginal above pass", Config{Metrics: []Metric{ok}, PassScore: 60}, "above pass"},
		{"weight for unknown group", Config{Metrics: []Metric{ok}, GroupWeights: map[string]float64{"h": 10}}, "no unmuted metric"},
		{"negative weight", Config{Metrics: []Metric{ok}, GroupWeights: map[string]float64{"g": -1}}, "weight"},
		{"all weights zero", Config{Metrics: []Metric{ok}, GroupWeights: map[string]float64{"g": 0}}, "add up to 0"},
		{"partial weights over 100", Config{Metrics: []Metric{ok, {Name: "b", Group: "h"}}, GroupWeights: map[string]float64{"g": 120}}, "above 100"},
		{"relative weights", Config{Metrics: []Metric{ok, {Name: "b", Group: "h"}}, GroupWeights: map[string]float64{"g": 3, "h": 1}}, ""},
		{"weight for the default group as \"\"", Config{Metrics: []Metric{ok, {Name: "b"}}, GroupWeights: map[string]float64{"": 30}}, ""},
		{"default group weighted twice", Config{Metrics: []Metric{ok, {Name: "b"}}, GroupWeights: map[string]float64{"": 30, DefaultGroup: 20}}, "same group"},
	}
	for _, tc := range cases {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
		if tc.want != "" {
			if _, jerr := Judge(tc.c, nil); jerr == nil {
				t.Errorf("%s: Judge accepted an invalid config", tc.name)
			}
		}
	}
}
