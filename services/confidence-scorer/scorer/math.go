package scorer

import (
	"math"

	"github.com/decision-fabric/fabric/internal/world"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
)

// History scopes: which earlier decisions counted as similar.
const (
	ScopeActionTarget = "action_target" // same tenant, action and target
	ScopeAction       = "action"        // same tenant and action, other targets
	ScopeNone         = "none"          // nothing finished yet: the prior alone
)

// The model. Every number below is part of the scorer's contract: changing one changes
// scores, so it is a reviewed change with its test updated.
const (
	// PriorAlpha and PriorBeta are the Beta prior over a similar decision's success:
	// Beta(1,1), uniform, "one imagined success and one imagined failure". With s
	// successes and f failures the posterior is Beta(1+s, 1+f); its mean (1+s)/(2+s+f)
	// makes 2 of 2 read 0.75, not 1.0.
	PriorAlpha = 1.0
	PriorBeta  = 1.0
	// CredibleMass is the mass of the equal-tailed credible interval reported (5%–95%).
	CredibleMass = 0.90

	// Confidence is a weighted mean of the evidence's log-odds, shrunk towards 0.5 by an
	// anchor of weight 1 at 0.5:
	//
	//	confidence = sigmoid( Σ wᵢ·logit(pᵢ) / (anchorWeight + Σ wᵢ) )
	//
	// so thin evidence (small total weight) stays near 0.5, and no single source can push
	// confidence past its own probability.
	anchorWeight = 1.0
	// History weight is historyWeightMax·n/(n+historyHalfN) for n finished decisions:
	// 0 with none, 1 with 2, 2 with 8, approaching 3. Similar decisions on other targets
	// (ScopeAction) count at actionScopeDiscount of that.
	historyWeightMax    = 3.0
	historyHalfN        = 4.0
	actionScopeDiscount = 0.5
	// voteWeight is the weight of the regions' final-round agreement (0 without votes).
	voteWeight = 1.5
	// Live metrics weigh metricsWeightMax·S/(S+metricsHalfSamples) for S requests seen.
	metricsWeightMax   = 1.0
	metricsHalfSamples = 100.0
	// modelWeight is the weight of the model's success probability (0 if unavailable).
	modelWeight = 1.0
	// Probabilities are clamped to [minP, maxP] before taking log-odds, so a unanimous
	// vote or a model answering 1.0 is strong evidence, not infinite evidence.
	minP = 0.02
	maxP = 0.98

	// Currency of every cost estimate.
	Currency = "USD"
)

// Factor names, in the order they are reported.
const (
	FactorHistory = "history"
	FactorVotes   = "vote_agreement"
	FactorMetrics = "live_metrics"
	FactorModel   = "model"
)

// Risk component names and weights; the weights add up to 1, so the score is in [0,1].
const (
	RiskImpact      = "impact"
	RiskBlastRadius = "blast_radius"
	RiskErrorRate   = "error_rate"
	RiskUncertainty = "uncertainty"

	riskImpactWeight      = 0.40
	riskBlastWeight       = 0.25
	riskErrorRateWeight   = 0.15
	riskUncertaintyWeight = 0.20
	// errorRateCeiling: an error rate at or above it is the worst case (component 1).
	errorRateCeiling = 0.05
	// Risk levels: below riskMedium is low, below riskHigh medium, else high. A
	// declared or effective high impact is never reported as low risk.
	riskMedium = 0.35
	riskHigh   = 0.60
)

// Risk levels.
const (
	LevelLow    = "low"
	LevelMedium = "medium"
	LevelHigh   = "high"
)

// Inputs is everything a score is computed from; Score is a pure function of it. Its
// canonical JSON is hashed into ScoreResponse.inputs_sha256.
type Inputs struct {
	ProposalID string `json:"proposal_id"`
	Action     string `json:"action"`
	Target     string `json:"target"`
	// Impact is "low", "medium" or "high"; anything else counts as "medium".
	Impact  string        `json:"impact"`
	Votes   VoteInput     `json:"votes"`
	History HistoryInput  `json:"history"`
	Metrics MetricsInput  `json:"metrics"`
	Model   ModelInput    `json:"model"`
	Regions []RegionInput `json:"regions"` // sorted by Region
}

// VoteInput is the final round's agreement.
type VoteInput struct {
	Found    bool    `json:"found"`
	Accepted float64 `json:"accepted"` // accepting weight
	Total    float64 `json:"total"`    // weight of all votes cast
}

// HistoryInput counts earlier outcomes.
type HistoryInput struct {
	Successes int    `json:"successes"`
	Failures  int    `json:"failures"`
	Scope     string `json:"scope"`
}

// MetricsInput is the live reading, if any.
type MetricsInput struct {
	Available    bool    `json:"available"`
	Source       string  `json:"source"`
	ErrorRate    float64 `json:"error_rate"`
	CPU          float64 `json:"cpu"`
	P99LatencyMS float64 `json:"p99_latency_ms"`
	Samples      int     `json:"samples"`
}

// ModelInput is the model's verdict, if any.
type ModelInput struct {
	Available   bool    `json:"available"`
	Provider    string  `json:"provider"`
	Model       string  `json:"model"`
	Probability float64 `json:"probability"`
}

// RegionInput is one region's capacity and price, and the change to it.
type RegionInput struct {
	Region             string  `json:"region"`
	Replicas           int     `json:"replicas"`
	CostPerReplicaHour float64 `json:"cost_per_replica_hour"`
	ReplicasDelta      int     `json:"replicas_delta"`
}

// evidence is one factor while the score is computed.
type evidence struct {
	name   string
	value  float64 // what is reported as Factor.value
	p      float64 // probability fed into the combination
	weight float64
	effect float64 // confidence minus confidence had this factor read neutral (0.5)
}

// result carries the intermediate numbers the explanation needs.
type result struct {
	in         Inputs
	confidence float64
	factors    []evidence
	top        int // index into factors of the largest |effect|, -1 if none moved it
	hist       *scorerv1.History
	metricsP   float64
	risk       *scorerv1.Risk
	riskTop    string
	cost       *scorerv1.CostEstimate
	totalDelta int
	absDelta   int
	replicas   int
}

// Score computes the response for in. It reads no clock and iterates no map, so equal
// inputs give byte-identical responses.
func Score(in Inputs) (*scorerv1.ScoreResponse, error) {
	sum, err := canonical.Marshal(in)
	if err != nil {
		return nil, err
	}
	r := compute(in)
	factors := make([]*scorerv1.Factor, len(r.factors))
	for i, f := range r.factors {
		factors[i] = &scorerv1.Factor{Name: f.name, Value: round4(f.value), Effect: round4(f.effect),
			Weight: round4(f.weight), Detail: factorDetail(r, i)}
	}
	return &scorerv1.ScoreResponse{
		ProposalId:   in.ProposalID,
		Confidence:   round4(r.confidence),
		Risk:         r.risk,
		CostEstimate: r.cost,
		Explanation:  explain(r),
		Factors:      factors,
		History:      r.hist,
		InputsSha256: canonical.SHA256Hex(sum),
	}, nil
}

func compute(in Inputs) *result {
	r := &result{in: in, top: -1}
	for _, reg := range in.Regions {
		r.totalDelta += reg.ReplicasDelta
		r.absDelta += abs(reg.ReplicasDelta)
		r.replicas += reg.Replicas
	}

	// (b) History: Beta-Binomial posterior.
	h := in.History
	a, b := PriorAlpha+float64(h.Successes), PriorBeta+float64(h.Failures)
	tail := (1 - CredibleMass) / 2
	r.hist = &scorerv1.History{
		Successes: int32(h.Successes), Failures: int32(h.Failures), Scope: h.Scope,
		PriorAlpha: PriorAlpha, PriorBeta: PriorBeta,
		PosteriorMean: round4(a / (a + b)),
		IntervalLow:   round4(betaQuantile(tail, a, b)),
		IntervalHigh:  round4(betaQuantile(1-tail, a, b)),
	}
	n := float64(h.Successes + h.Failures)
	hw := historyWeightMax * n / (n + historyHalfN)
	if h.Scope == ScopeAction {
		hw *= actionScopeDiscount
	}
	mean := a / (a + b)
	r.factors = append(r.factors, evidence{name: FactorHistory, value: mean, p: mean, weight: hw})

	// (a) Votes: accepting share of the final round's weight; neutral without one.
	frac, vw := 0.5, 0.0
	if in.Votes.Found && in.Votes.Total > 0 {
		frac, vw = clamp(in.Votes.Accepted/in.Votes.Total, 0, 1), voteWeight
	}
	r.factors = append(r.factors, evidence{name: FactorVotes, value: frac, p: frac, weight: vw})

	// (c) Live metrics: how healthy the target is for this change.
	r.metricsP = metricsProbability(in.Metrics, r.totalDelta)
	mw := 0.0
	if in.Metrics.Available && in.Metrics.Samples > 0 {
		s := float64(in.Metrics.Samples)
		mw = metricsWeightMax * s / (s + metricsHalfSamples)
	}
	r.factors = append(r.factors, evidence{name: FactorMetrics, value: r.metricsP, p: r.metricsP, weight: mw})

	// (d) The model's success probability.
	mp, mdw := 0.5, 0.0
	if in.Model.Available {
		mp, mdw = in.Model.Probability, modelWeight
	}
	r.factors = append(r.factors, evidence{name: FactorModel, value: mp, p: mp, weight: mdw})

	r.confidence = combine(r.factors, -1)
	best := 0.005 // an effect below half a point is "did not move it"
	for i := range r.factors {
		r.factors[i].effect = r.confidence - combine(r.factors, i)
		if e := math.Abs(r.factors[i].effect); e >= best {
			if r.top < 0 || e > math.Abs(r.factors[r.top].effect) {
				r.top = i
			}
		}
	}

	r.risk, r.riskTop = risk(in, r)
	r.cost = cost(in.Regions)
	return r
}

// combine is the weighted mean of log-odds with the anchor. Factor neutral (-1: none)
// is taken to have read 0.5 at its weight: that is the counterfactual behind each
// factor's effect ("how much higher is confidence than if this source had been
// neutral"). Unlike dropping the factor, it credits a source for agreeing with the
// others, so a long successful history is the largest factor even when the votes and
// the model say much the same.
func combine(fs []evidence, neutral int) float64 {
	num, den := 0.0, anchorWeight
	for i, f := range fs {
		if f.weight == 0 {
			continue
		}
		den += f.weight
		if i != neutral {
			num += f.weight * logit(clamp(f.p, minP, maxP))
		}
	}
	return sigmoid(num / den)
}

// metricsProbability turns a live reading into a success probability for a change of
// totalDelta replicas: 0.92, minus 8× the error rate (at most 0.6), minus a CPU penalty
// that depends on the direction of the change — removing capacity from a busy target
// (CPU above 70%) costs 1.5× the excess, leaving capacity as is costs 1× the excess
// above 85%, adding capacity costs nothing (that is the cure). Clamped to [0.05, 0.95].
// Without a reading it is 0.5 (and carries no weight).
func metricsProbability(m MetricsInput, totalDelta int) float64 {
	if !m.Available || m.Samples <= 0 {
		return 0.5
	}
	p := 0.92 - math.Min(0.6, 8*m.ErrorRate)
	switch {
	case totalDelta < 0:
		p -= 1.5 * math.Max(0, m.CPU-0.70)
	case totalDelta == 0:
		p -= math.Max(0, m.CPU-0.85)
	}
	return clamp(p, 0.05, 0.95)
}

// risk is Σ weight·component over impact, blast radius, error rate and uncertainty:
//
//   - impact: low 0.2, medium 0.5, high 0.9;
//   - blast radius: half from how many regions (1 region 0, 5 or more 1), half from
//     the share of replicas changing (Σ|delta| / Σ replicas, capped at 1);
//   - error rate: live error rate / 5% (capped at 1); 0.5 when unknown;
//   - uncertainty: half the width of the history's 90% interval plus half of
//     (1 − confidence).
func risk(in Inputs, r *result) (*scorerv1.Risk, string) {
	impact := 0.5
	switch in.Impact {
	case LevelLow:
		impact = 0.2
	case LevelHigh:
		impact = 0.9
	}
	regions := math.Min(1, float64(max(len(in.Regions)-1, 0))/4)
	share := 0.0
	if r.replicas > 0 {
		share = math.Min(1, float64(r.absDelta)/float64(r.replicas))
	} else if r.absDelta > 0 {
		share = 1
	}
	blast := 0.5*regions + 0.5*share
	errRate := 0.5
	if in.Metrics.Available && in.Metrics.Samples > 0 {
		errRate = math.Min(1, in.Metrics.ErrorRate/errorRateCeiling)
	}
	uncertainty := 0.5*(r.hist.IntervalHigh-r.hist.IntervalLow) + 0.5*(1-r.confidence)

	comps := []struct {
		name          string
		value, weight float64
	}{
		{RiskImpact, impact, riskImpactWeight},
		{RiskBlastRadius, blast, riskBlastWeight},
		{RiskErrorRate, errRate, riskErrorRateWeight},
		{RiskUncertainty, uncertainty, riskUncertaintyWeight},
	}
	out := &scorerv1.Risk{}
	score, top, topEffect := 0.0, "", -1.0
	for _, c := range comps {
		e := c.value * c.weight
		score += e
		if e > topEffect {
			top, topEffect = c.name, e
		}
		out.Components = append(out.Components, &scorerv1.Factor{Name: c.name, Value: round4(c.value),
			Effect: round4(e), Weight: c.weight})
	}
	out.Score = round4(score)
	switch {
	case out.Score >= riskHigh:
		out.Level = LevelHigh
	case out.Score >= riskMedium || in.Impact == LevelHigh:
		out.Level = LevelMedium
	default:
		out.Level = LevelLow
	}
	return out, top
}

// cost is Σ over regions of delta × price per replica-hour × HoursPerMonth, each line
// rounded to cents (so the lines add up to the amount exactly).
func cost(regions []RegionInput) *scorerv1.CostEstimate {
	out := &scorerv1.CostEstimate{Currency: Currency}
	cents := 0.0
	for _, reg := range regions {
		amount := round2(float64(reg.ReplicasDelta) * reg.CostPerReplicaHour * world.HoursPerMonth)
		cents += math.Round(amount * 100)
		out.Breakdown = append(out.Breakdown, &scorerv1.CostItem{
			Item:               costItemText(reg),
			Amount:             amount,
			Region:             reg.Region,
			ReplicasDelta:      int64(reg.ReplicasDelta),
			CostPerReplicaHour: reg.CostPerReplicaHour,
		})
	}
	out.Amount = cents / 100
	return out
}

func logit(p float64) float64   { return math.Log(p / (1 - p)) }
func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
func round4(x float64) float64  { return zero(math.Round(x*1e4) / 1e4) }
func round2(x float64) float64  { return zero(math.Round(x*100) / 100) }

// zero turns -0 into 0, so JSON never shows "-0".
func zero(x float64) float64 {
	if x == 0 {
		return 0
	}
	return x
}

func clamp(x, lo, hi float64) float64 {
	if math.IsNaN(x) {
		return lo
	}
	return math.Max(lo, math.Min(hi, x))
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
