package judge

import (
	"encoding/json"
	"os"
	"testing"
)

// kayentaCase is one MannWhitneyClassifier test of Kayenta's
// ClassifierSuite.scala, transcribed into testdata by a script (canary =
// experimentData, baseline = controlData).
type kayentaCase struct {
	Name               string    `json:"name"`
	Canary             []float64 `json:"canary"`
	Baseline           []float64 `json:"baseline"`
	Tolerance          float64   `json:"tolerance"`
	Confidence         float64   `json:"confidence"`
	AllowedDecrease    float64   `json:"allowedDecrease"`
	AllowedIncrease    float64   `json:"allowedIncrease"`
	CriticalThresholds []float64 `json:"criticalThresholds"`
	Measure            string    `json:"measure"`
	Direction          string    `json:"direction"`
	NaNStrategy        string    `json:"nanStrategy"`
	Critical           bool      `json:"critical"`
	Want               *string   `json:"kayentaClassification"`
	WantCritical       *bool     `json:"kayentaCritical"`
}

// Where this package decides differently from Kayenta on purpose
// (docs/canary-judge.md, "Differences").
var kayentaDeviations = map[string]struct {
	class    Classification
	critical bool
	why      string
}{
	"Mann-Whitney Missing Experiment Data with NaN Replacement": {Nodata, false,
		"empty data is Nodata whatever the NaN strategy (Kayenta: Pass with nanStrategy=replace, so a run whose queries all returned nothing would pass)"},
	"Mann-Whitney Classifier Test - Critical Effect Size: High": {High, true,
		"a critical metric that is not Pass always fails the canary: there are no separate critical effect-size thresholds"},
}

func TestKayentaClassifierSuite(t *testing.T) {
	raw, err := os.ReadFile("testdata/kayenta_classifier_suite.json")
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Cases []kayentaCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Cases) < 30 {
		t.Fatalf("only %d cases transcribed", len(suite.Cases))
	}
	for _, kc := range suite.Cases {
		t.Run(kc.Name, func(t *testing.T) {
			m := Metric{
				Name:              "m",
				Direction:         Direction(kc.Direction),
				Critical:          kc.Critical,
				Tolerance:         kc.Tolerance,
				NaNStrategy:       NaNStrategy(kc.NaNStrategy),
				EffectSizeMeasure: EffectSizeMeasure(kc.Measure),
				AllowedIncrease:   kc.AllowedIncrease,
				AllowedDecrease:   kc.AllowedDecrease,
			}
			r := classifyMetric(m, Series{Baseline: kc.Baseline, Canary: kc.Canary}, true, kc.Confidence)
			if r.Reason == "" {
				t.Errorf("empty reason")
			}
			if kc.Want == nil {
				return
			}
			want, wantCritical := Classification(*kc.Want), kc.Critical && *kc.Want != string(Pass)
			if kc.WantCritical != nil {
				wantCritical = *kc.WantCritical
			}
			if dev, ok := kayentaDeviations[kc.Name]; ok {
				t.Logf("deliberate difference from Kayenta: %s", dev.why)
				want, wantCritical = dev.class, dev.critical
			}
			if r.Classification != want || r.CriticalFailure != wantCritical {
				t.Errorf("got %s (critical failure %v), want %s (%v)\n%s", r.Classification, r.CriticalFailure, want, wantCritical, r.Reason)
			}
		})
	}
}
