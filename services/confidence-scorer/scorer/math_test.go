package scorer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
)

func mustScore(t testing.TB, in Inputs) *scorerv1.ScoreResponse {
	t.Helper()
	r, err := Score(in)
	require.NoError(t, err)
	return r
}

func factor(r *scorerv1.ScoreResponse, name string) *scorerv1.Factor {
	for _, f := range r.GetFactors() {
		if f.GetName() == name {
			return f
		}
	}
	return nil
}

// bare is a proposal with no evidence at all: no history, votes, metrics or model.
func bare() Inputs {
	return Inputs{
		ProposalID: "01J00000000000000000000001", Action: "scale", Target: "serviceX", Impact: LevelMedium,
		History: HistoryInput{Scope: ScopeNone},
		Metrics: MetricsInput{Source: "prometheus"},
		Model:   ModelInput{Provider: "neural-fabric"},
		Regions: []RegionInput{{Region: "default", Replicas: 3, CostPerReplicaHour: 0.1}},
	}
}

func TestHistoryPosterior(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name           string
		s, f           int
		scope          string
		mean, lo, hi   float64
		weight         float64
		explanationHas string
	}{
		{"no history is the prior", 0, 0, ScopeNone, 0.5, 0.05, 0.95, 0, "Beta(1,1) prior alone (mean 0.50, 90% interval 0.05–0.95)"},
		{"2 of 2 is not 100%", 2, 0, ScopeActionTarget, 0.75, 0.3684, 0.983, 1, "2 of 2 similar scale changes for serviceX succeeded (posterior 0.75, 90% interval 0.37–0.98)"},
		{"0 of 2", 0, 2, ScopeActionTarget, 0.25, 0.017, 0.6316, 1, "0 of 2 similar"},
		{"7 of 8", 7, 1, ScopeActionTarget, 0.8, 0.5709, 0.959, 2, "7 of 8 similar scale changes for serviceX succeeded (posterior 0.80, 90% interval 0.57–0.96)"},
		{"other targets count at half weight", 3, 1, ScopeAction, 0.6667, 0.3426, 0.9236, 0.75, "3 of 4 scale changes for other targets succeeded"},
		{"long history narrows the interval", 90, 10, ScopeActionTarget, 0.8922, 0.8378, 0.9377, 2.8846, "90 of 100"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := bare()
			in.History = HistoryInput{Successes: c.s, Failures: c.f, Scope: c.scope}
			r := mustScore(t, in)
			h := r.GetHistory()
			require.Equal(t, c.scope, h.GetScope())
			require.Equal(t, 1.0, h.GetPriorAlpha())
			require.Equal(t, 1.0, h.GetPriorBeta())
			require.InDelta(t, c.mean, h.GetPosteriorMean(), 1e-4)
			require.InDelta(t, c.lo, h.GetIntervalLow(), 1e-4)
			require.InDelta(t, c.hi, h.GetIntervalHigh(), 1e-4)
			f := factor(r, FactorHistory)
			require.InDelta(t, c.weight, f.GetWeight(), 1e-4)
			require.InDelta(t, c.mean, f.GetValue(), 1e-4)
			require.Contains(t, r.GetExplanation(), c.explanationHas)
			require.Less(t, r.GetConfidence(), 1.0)
		})
	}
}

func TestTwoOfTwoIsNotCertain(t *testing.T) {
	t.Parallel()
	in := bare()
	in.History = HistoryInput{Successes: 2, Scope: ScopeActionTarget}
	r := mustScore(t, in)
	require.Equal(t, 0.75, r.GetHistory().GetPosteriorMean())
	require.Greater(t, r.GetHistory().GetIntervalHigh()-r.GetHistory().GetIntervalLow(), 0.5, "a wide interval")
	// With nothing else to go on, two successes move confidence only part of the way.
	require.Greater(t, r.GetConfidence(), 0.5)
	require.Less(t, r.GetConfidence(), 0.75)
}

func TestNoEvidenceIsNeutral(t *testing.T) {
	t.Parallel()
	r := mustScore(t, bare())
	require.Equal(t, 0.5, r.GetConfidence())
	for _, f := range r.GetFactors() {
		require.Zero(t, f.GetWeight(), f.GetName())
		require.Zero(t, f.GetEffect(), f.GetName())
	}
	e := r.GetExplanation()
	require.True(t, strings.HasPrefix(e, "Confidence is 0.50. No factor moved it from the neutral 0.50."), e)
	require.Contains(t, e, "No negotiation round has finished yet, so vote agreement counts as neutral (0.50).")
	require.Contains(t, e, "Live metrics (prometheus) were unavailable")
	require.Contains(t, e, "The model (neural-fabric) was unavailable")
	require.Contains(t, e, "no cost change is estimated")
}

func TestExampleExplanation(t *testing.T) {
	t.Parallel()
	r := mustScore(t, example())
	require.InDelta(t, 0.79, r.GetConfidence(), 0.01)
	require.Equal(t, "Confidence is 0.79. "+
		"The largest factor is the history (+0.08): 7 of 8 similar scale changes for serviceX succeeded (posterior 0.80, 90% interval 0.57–0.96). "+
		"Regions agreed 4 of 5 (accepting weight 0.80). "+
		"Live error rate is 0.4% and CPU 62% over 1,234 requests (prometheus), which reads as 0.89 for this change. "+
		"The model simulated-v1 puts success at 0.86. "+
		"Risk is medium (0.35), mostly from the medium impact. "+
		"Estimated cost +$438/month across 2 regions.", r.GetExplanation())
	names := []string{}
	for _, f := range r.GetFactors() {
		names = append(names, f.GetName())
		require.NotEmpty(t, f.GetDetail())
		require.Greater(t, f.GetEffect(), 0.0, "every source agrees the change is likely to work")
	}
	require.Equal(t, []string{FactorHistory, FactorVotes, FactorMetrics, FactorModel}, names)
}

// TestTopFactor: the explanation names whichever factor moved the score most.
func TestTopFactor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		modify func(*Inputs)
		label  string
		has    string
	}{
		{"history", func(in *Inputs) {}, "the history", "7 of 8"},
		{"votes", func(in *Inputs) { in.Votes = VoteInput{Found: true, Accepted: 0, Total: 5} }, "the regional vote", "regions agreed 0 of 5"},
		{"metrics", func(in *Inputs) {
			// Removing capacity from a failing, saturated target.
			in.Metrics.ErrorRate, in.Metrics.CPU, in.Metrics.Samples = 0.2, 0.99, 100000
			for i := range in.Regions {
				in.Regions[i].ReplicasDelta = -1
			}
			in.History = HistoryInput{Scope: ScopeNone}
			in.Votes = VoteInput{}
		}, "the live metrics", "live error rate is 20% and CPU 99%"},
		{"model", func(in *Inputs) {
			in.Model.Probability = 0.02
			in.History = HistoryInput{Scope: ScopeNone}
			in.Votes = VoteInput{}
		}, "the model", "puts success at 0.02"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := example()
			c.modify(&in)
			r := mustScore(t, in)
			require.Contains(t, r.GetExplanation(), "The largest factor is "+c.label+" (")
			require.Contains(t, r.GetExplanation(), c.has)
			// And it really is the largest effect.
			top := r.GetFactors()[0]
			for _, f := range r.GetFactors() {
				if math.Abs(f.GetEffect()) > math.Abs(top.GetEffect()) {
					top = f
				}
			}
			require.Equal(t, c.label, factorLabel(top.GetName()))
		})
	}
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	a, b := mustScore(t, example()), mustScore(t, example())
	ab, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	require.NoError(t, err)
	bb, err := proto.MarshalOptions{Deterministic: true}.Marshal(b)
	require.NoError(t, err)
	require.Equal(t, ab, bb)
	aj, err := protojson.Marshal(a)
	require.NoError(t, err)
	bj, err := protojson.Marshal(b)
	require.NoError(t, err)
	require.Equal(t, aj, bj)
	require.Len(t, a.GetInputsSha256(), 64)

	// Any input change changes the hash.
	in := example()
	in.Metrics.Samples++
	require.NotEqual(t, a.GetInputsSha256(), mustScore(t, in).GetInputsSha256())
}

func TestVotes(t *testing.T) {
	t.Parallel()
	in := bare()
	in.Votes = VoteInput{Found: true, Accepted: 5, Total: 5}
	r := mustScore(t, in)
	require.Less(t, r.GetConfidence(), 0.98, "unanimity is strong evidence, not certainty")
	require.Greater(t, r.GetConfidence(), 0.8)
	require.Equal(t, 1.0, factor(r, FactorVotes).GetValue())

	in.Votes = VoteInput{Found: true, Accepted: 0.5, Total: 1.5}
	r = mustScore(t, in)
	require.Contains(t, r.GetExplanation(), "regions agreed 0.50 of 1.50 (accepting weight 0.33)")
	require.Less(t, r.GetConfidence(), 0.5)

	in.Votes = VoteInput{Found: true}
	r = mustScore(t, in)
	require.Equal(t, 0.5, r.GetConfidence())
	require.Contains(t, r.GetExplanation(), "recorded no votes")
}

func TestMetricsDirection(t *testing.T) {
	t.Parallel()
	busy := MetricsInput{Available: true, Source: "s", ErrorRate: 0.001, CPU: 0.95, Samples: 1000}
	// A busy target: adding capacity is fine, removing it is not.
	require.Greater(t, metricsProbability(busy, 2), 0.9)
	require.Less(t, metricsProbability(busy, -1), 0.6)
	require.Less(t, metricsProbability(busy, 0), metricsProbability(busy, 2))
	// Errors hurt whatever the direction.
	bad := busy
	bad.CPU, bad.ErrorRate = 0.3, 0.05
	require.InDelta(t, 0.52, metricsProbability(bad, 1), 1e-9)
	// No traffic, no evidence.
	require.Equal(t, 0.5, metricsProbability(MetricsInput{Available: true}, 1))

	in := bare()
	in.Metrics = MetricsInput{Available: true, Source: "prometheus", Samples: 0}
	require.Contains(t, mustScore(t, in).GetExplanation(), "show no traffic")
}

func TestWeightsGrowWithEvidence(t *testing.T) {
	t.Parallel()
	prev := 0.0
	for _, n := range []int{0, 1, 2, 4, 8, 32, 128} {
		in := bare()
		in.History = HistoryInput{Successes: n, Scope: ScopeActionTarget}
		r := mustScore(t, in)
		w := factor(r, FactorHistory).GetWeight()
		require.GreaterOrEqual(t, w, prev)
		require.Less(t, w, historyWeightMax)
		prev = w
	}
	for _, s := range []int{1, 10, 100, 1000} {
		in := bare()
		in.Metrics = MetricsInput{Available: true, Source: "s", Samples: s, CPU: 0.5}
		require.Less(t, factor(mustScore(t, in), FactorMetrics).GetWeight(), metricsWeightMax)
	}
}

func TestRisk(t *testing.T) {
	t.Parallel()
	low := example()
	low.Impact = LevelLow
	low.Regions = low.Regions[:1]
	low.Regions[0].ReplicasDelta = 1
	r := mustScore(t, low)
	require.Equal(t, LevelLow, r.GetRisk().GetLevel(), r.GetRisk().String())

	high := example()
	high.Impact = LevelHigh
	high.Metrics.ErrorRate = 0.08
	high.Regions = []RegionInput{{Region: "a", Replicas: 2, ReplicasDelta: 6}, {Region: "b", Replicas: 2, ReplicasDelta: 6},
		{Region: "c", Replicas: 2, ReplicasDelta: 6}, {Region: "d", Replicas: 2, ReplicasDelta: 6}, {Region: "e", Replicas: 2, ReplicasDelta: 6}}
	r = mustScore(t, high)
	require.Equal(t, LevelHigh, r.GetRisk().GetLevel())
	require.Contains(t, r.GetExplanation(), "Risk is high")

	// High impact is never low risk, however benign the rest.
	floor := low
	floor.Impact = LevelHigh
	floor.History = HistoryInput{Successes: 500, Scope: ScopeActionTarget}
	floor.Metrics.ErrorRate = 0
	r = mustScore(t, floor)
	require.Equal(t, LevelMedium, r.GetRisk().GetLevel())

	// Components add up to the score and name the four inputs.
	sum := 0.0
	var names []string
	for _, c := range r.GetRisk().GetComponents() {
		sum += c.GetEffect()
		names = append(names, c.GetName())
	}
	require.InDelta(t, r.GetRisk().GetScore(), sum, 2e-4)
	require.Equal(t, []string{RiskImpact, RiskBlastRadius, RiskErrorRate, RiskUncertainty}, names)

	// More uncertainty, more risk.
	sure, unsure := example(), example()
	sure.History = HistoryInput{Successes: 70, Failures: 10, Scope: ScopeActionTarget}
	unsure.History = HistoryInput{Scope: ScopeNone}
	require.Less(t, mustScore(t, sure).GetRisk().GetScore(), mustScore(t, unsure).GetRisk().GetScore())

	// The blast radius names regions and replicas when it dominates.
	wide := example()
	wide.Impact = LevelLow
	wide.Regions = high.Regions
	require.Contains(t, mustScore(t, wide).GetExplanation(), "mostly from the blast radius (5 regions, 30 of 10 replicas changing)")
}

func TestCost(t *testing.T) {
	t.Parallel()
	r := mustScore(t, example())
	c := r.GetCostEstimate()
	require.Equal(t, "USD", c.GetCurrency())
	require.Equal(t, 438.0, c.GetAmount())
	require.Len(t, c.GetBreakdown(), 2)
	require.Equal(t, "eu-west: +2 replicas × $0.15/replica-hour × 730 h", c.GetBreakdown()[0].GetItem())
	require.Equal(t, 219.0, c.GetBreakdown()[0].GetAmount())
	require.Equal(t, int64(2), c.GetBreakdown()[1].GetReplicasDelta())

	saving := example()
	for i := range saving.Regions {
		saving.Regions[i].ReplicasDelta = -1
		saving.Regions[i].CostPerReplicaHour = 0.123
	}
	r = mustScore(t, saving)
	// Each line rounds to cents (-89.79) and the total is their sum.
	require.Equal(t, -179.58, r.GetCostEstimate().GetAmount())
	require.Contains(t, r.GetExplanation(), "Estimated saving $180/month across 2 regions.")
	require.Equal(t, "eu-west: -1 replicas × $0.123/replica-hour × 730 h", r.GetCostEstimate().GetBreakdown()[0].GetItem())

	small := bare()
	small.Regions[0].ReplicasDelta, small.Regions[0].CostPerReplicaHour = 1, 0.01
	require.Contains(t, mustScore(t, small).GetExplanation(), "Estimated cost +$7.30/month across 1 region.")
}

// TestBounds: whatever the inputs, the outputs stay in range and finite.
func TestBounds(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	scopes := []string{ScopeNone, ScopeAction, ScopeActionTarget}
	impacts := []string{LevelLow, LevelMedium, LevelHigh, "weird"}
	for range 1000 {
		in := bare()
		in.Impact = impacts[rng.IntN(len(impacts))]
		in.History = HistoryInput{Successes: rng.IntN(50), Failures: rng.IntN(50), Scope: scopes[rng.IntN(3)]}
		in.Votes = VoteInput{Found: rng.IntN(2) == 0, Accepted: rng.Float64() * 5, Total: rng.Float64() * 5}
		in.Metrics = MetricsInput{Available: rng.IntN(2) == 0, ErrorRate: rng.Float64(), CPU: rng.Float64() * 2, Samples: rng.IntN(10000)}
		in.Model = ModelInput{Available: rng.IntN(2) == 0, Probability: rng.Float64()}
		in.Regions = nil
		for i := range rng.IntN(6) {
			in.Regions = append(in.Regions, RegionInput{Region: string(rune('a' + i)), Replicas: rng.IntN(20),
				CostPerReplicaHour: rng.Float64(), ReplicasDelta: rng.IntN(21) - 10})
		}
		r := mustScore(t, in)
		for _, x := range []float64{r.GetConfidence(), r.GetRisk().GetScore()} {
			require.False(t, math.IsNaN(x))
			require.GreaterOrEqual(t, x, 0.0)
			require.LessOrEqual(t, x, 1.0)
		}
		require.Contains(t, []string{LevelLow, LevelMedium, LevelHigh}, r.GetRisk().GetLevel())
		require.False(t, math.IsNaN(r.GetCostEstimate().GetAmount()))
		require.NotContains(t, r.GetExplanation(), "NaN")
	}
}
