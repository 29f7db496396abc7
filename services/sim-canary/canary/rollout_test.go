package canary

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	"github.com/decision-fabric/fabric/internal/metricsource"
)

// fixedSeries answers every canary query with canary and every baseline query with
// baseline (by the regions asked for).
type fixedSeries struct {
	canaryRegion     string
	canary, baseline []float64
}

func (f fixedSeries) Series(_ context.Context, _, _ string, regions []string, _ string, _, _ time.Duration) ([]float64, error) {
	if len(regions) == 1 && regions[0] == f.canaryRegion {
		return f.canary, nil
	}
	return f.baseline, nil
}

func judged(t *testing.T, src metricsource.SeriesSource) *canaryv1.CanaryStage {
	t.Helper()
	s := &Service{deps: Deps{Metrics: src, Judge: DefaultJudgeConfig(), Window: 10 * time.Minute, Step: 30 * time.Second, Now: time.Now}}
	st := &canaryv1.CanaryStage{Number: 1, Regions: []string{"eu-west"}, BaselineRegions: []string{"us-east"}, State: stageEnacted}
	s.judgeStage(context.Background(), "t1", "svc", st)
	return st
}

func around(level, spread float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = level * (1 + spread*(float64(i%7)-3)/3)
	}
	return out
}

// The verdict decides the wave: equal metrics promote it, a clearly worse canary fails
// it, and missing data (none at all, or only NaN) holds it, never promoting.
func TestJudgeStage(t *testing.T) {
	t.Parallel()
	base := around(100, 0.05, 20)

	st := judged(t, fixedSeries{"eu-west", base, base})
	require.Equal(t, stagePromoted, st.GetState(), st.GetReason())
	require.Equal(t, "PASS", st.GetVerdict())
	require.Len(t, st.GetMetrics(), 3)

	st = judged(t, fixedSeries{"eu-west", around(300, 0.05, 20), base})
	require.Equal(t, stageFailed, st.GetState(), st.GetReason())
	require.Equal(t, "FAIL", st.GetVerdict())

	st = judged(t, fixedSeries{"eu-west", nil, base})
	require.Equal(t, stageHeld, st.GetState())
	require.Contains(t, st.GetReason(), "no canary data in eu-west")
	require.Empty(t, st.GetVerdict(), "no verdict without data")

	nan := []float64{math.NaN(), math.NaN()}
	st = judged(t, fixedSeries{"eu-west", base, nan})
	require.Equal(t, stageHeld, st.GetState())
	require.Contains(t, st.GetReason(), "no baseline data in us-east")
}

func TestWaves(t *testing.T) {
	t.Parallel()
	w := waves([]string{"a", "b", "c"})
	require.Len(t, w, 2)
	require.Equal(t, []string{"a"}, w[0].GetRegions())
	require.Equal(t, []string{"b", "c"}, w[0].GetBaselineRegions())
	require.Equal(t, []string{"b", "c"}, w[1].GetRegions())
	require.Equal(t, []string{"a"}, w[1].GetBaselineRegions())
}
