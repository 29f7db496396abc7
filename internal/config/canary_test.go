package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/judge"
)

func TestCanaryJudgeConfig(t *testing.T) {
	t.Parallel()
	require.NoError(t, Canary{}.Validate(), "no metrics: the defaults")
	ok := CanaryJudge{Metrics: []CanaryMetric{{Name: "error_rate", Direction: "increase", Critical: true}}, PassScore: 90, MarginalScore: 60}
	require.NoError(t, Canary{Judge: ok, Tenants: map[string]CanaryJudge{"t1": ok}}.Validate())
	require.NoError(t, Canary{Window: Duration(5 * time.Minute), Step: Duration(15 * time.Second), Settle: Duration(time.Minute)}.Validate())
	got := ok.JudgeConfig()
	require.Equal(t, judge.Increase, got.Metrics[0].Direction)
	require.Equal(t, judge.NodataFail, got.Metrics[0].NodataPolicy, "a metric without data never passes")
	require.True(t, got.Metrics[0].Critical)
	for name, c := range map[string]Canary{
		"unknown metric":        {Judge: CanaryJudge{Metrics: []CanaryMetric{{Name: "cpu"}}}},
		"bad direction":         {Judge: CanaryJudge{Metrics: []CanaryMetric{{Name: "error_rate", Direction: "up"}}}},
		"thresholds, no metric": {Judge: CanaryJudge{PassScore: 90}},
		"marginal above pass":   {Judge: CanaryJudge{Metrics: ok.Metrics, PassScore: 60, MarginalScore: 90}},
		"tenant without metric": {Tenants: map[string]CanaryJudge{"t1": {}}},
		"duplicate metric":      {Judge: CanaryJudge{Metrics: []CanaryMetric{{Name: "error_rate"}, {Name: "error_rate"}}}},
		"negative settle":       {Settle: Duration(-time.Second)},
		"step above window":     {Window: Duration(time.Minute), Step: Duration(time.Hour)},
		"too many samples":      {Window: Duration(time.Hour), Step: Duration(time.Second)},
	} {
		require.Error(t, c.Validate(), name)
	}
}
