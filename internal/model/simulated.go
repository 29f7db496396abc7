package model

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"

	"github.com/decision-fabric/fabric/internal/policy"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// SimulatedName is the Name of the simulated provider; SimulatedModel is the Model it
// reports in assessments.
const (
	SimulatedName  = "simulated"
	SimulatedModel = "simulated-v1"
)

// Thresholds of the simulated rules.
const (
	// PressureThreshold: a "cpu", "latency" or "scale" hint above it asks for more capacity.
	PressureThreshold = 0.8
	// ErrorRateThreshold: an "error_rate" hint above it asks for more capacity.
	ErrorRateThreshold = 0.05
	// IdleThreshold: a "cpu" hint below it allows removing capacity.
	IdleThreshold = 0.2
)

type simulated struct{}

// NewSimulated returns the deterministic, rule-based provider used in simulation mode.
// Equal requests always get equal answers; nothing is random and no clock is read.
//
// Suggest applies the first rule that matches (context keywords are matched as whole
// words, case-insensitively; hints are the request's MetricHints):
//
//  1. Pressure: a "cpu", "latency" or "scale" hint above 0.8, an "error_rate" hint above
//     0.05, or the words "scale up", "scale out", "scale", "latency", "cpu", "slow" or
//     "overload" (but not "scale down"/"scale in"): action "scale" with
//     {"replicas_delta": 1}, or 2 when the highest saturation is above 0.95; impact
//     "medium". Pressure wins over cost: removing capacity from a saturated service is
//     how outages start.
//  2. Cost: the words "cost", "costs", "save", "saving", "spend" or "cheaper": action
//     "reduce_cost" with {"replicas_delta": -1}; impact "low"; confidence 0.75, lowered
//     when a "cpu" hint shows the capacity is in use.
//  3. Idle: the words "scale down", "scale in", "idle" or "overprovisioned", or a
//     "cpu" hint below 0.2: action "scale" with {"replicas_delta": -1}; impact "low".
//  4. Otherwise: action "no_change" with no parameters; impact "low"; confidence 0.5.
//
// Assess starts from a base in [0.60, 0.95] taken from an FNV-1a hash of (tenant,
// action, target, sorted regions, canonical JSON of the parameters) and subtracts:
// 0.05 per replica beyond one in |replicas_delta| (at most 0.25), 0.03 per region beyond
// two (at most 0.15), and 0.05 for an action outside scale, reduce_cost, restart,
// configure, rollback and no_change. The result is clamped to [0.05, 0.95] and rounded
// to four decimals.
func NewSimulated() Provider { return simulated{} }

func (simulated) Name() string { return SimulatedName }

func (simulated) Suggest(ctx context.Context, r SuggestRequest) (Suggestion, error) {
	if err := ctx.Err(); err != nil {
		return Suggestion{}, err
	}
	words := " " + strings.Join(strings.FieldsFunc(strings.ToLower(r.Context), func(c rune) bool {
		return (c < 'a' || c > 'z') && (c < '0' || c > '9')
	}), " ") + " "
	has := func(phrases ...string) string {
		for _, p := range phrases {
			if strings.Contains(words, " "+p+" ") {
				return p
			}
		}
		return ""
	}
	cpu, hasCPU := r.MetricHints["cpu"]

	// Rule 1: pressure.
	pressure, pressureFrom := 0.0, ""
	for _, k := range []string{"cpu", "latency", "scale"} { // fixed order: deterministic ties
		if v, ok := r.MetricHints[k]; ok && v > pressure {
			pressure, pressureFrom = v, k
		}
	}
	errRate := r.MetricHints["error_rate"]
	down := has("scale down", "scale in")
	kw := ""
	if down == "" {
		kw = has("scale up", "scale out", "scale", "latency", "cpu", "slow", "overload")
	}
	if pressure > PressureThreshold || errRate > ErrorRateThreshold || kw != "" {
		delta := 1
		if pressure > 0.95 {
			delta = 2
		}
		var why string
		conf := 0.6
		switch {
		case pressure > PressureThreshold:
			why = fmt.Sprintf("%s saturation %.2f is above %.2f", pressureFrom, pressure, PressureThreshold)
			conf = 0.6 + 0.3*math.Min(1, (pressure-PressureThreshold)/0.2)
		case errRate > ErrorRateThreshold:
			why = fmt.Sprintf("error rate %.1f%% is above %.1f%%", 100*errRate, 100*ErrorRateThreshold)
			conf = 0.65
		default:
			why = fmt.Sprintf("the context asks about %q", kw)
		}
		rationale := fmt.Sprintf("Scale up by %d replica(s): %s.", delta, why)
		if c := has("cost", "costs", "save", "saving", "spend", "cheaper"); c != "" {
			rationale += " Cost reduction was asked for too, but removing capacity from a service under pressure is riskier than the saving is worth."
		}
		return Suggestion{Action: "scale", Parameters: map[string]any{"replicas_delta": delta}, Impact: policy.ImpactMedium,
			Confidence: round4(conf), Rationale: rationale}, nil
	}

	// Rule 2: cost.
	if c := has("cost", "costs", "save", "saving", "spend", "cheaper"); c != "" {
		conf := 0.75
		rationale := fmt.Sprintf("Remove one replica to reduce cost: the context mentions %q.", c)
		if hasCPU && cpu > 0.5 {
			conf = math.Max(0.3, 0.75-(cpu-0.5))
			rationale += fmt.Sprintf(" CPU is at %.0f%%, so the remaining replicas will run hotter.", 100*cpu)
		}
		return Suggestion{Action: "reduce_cost", Parameters: map[string]any{"replicas_delta": -1}, Impact: policy.ImpactLow,
			Confidence: round4(conf), Rationale: rationale}, nil
	}

	// Rule 3: idle.
	idle := down
	if idle == "" {
		idle = has("idle", "overprovisioned")
	}
	if idle != "" || (hasCPU && cpu < IdleThreshold) {
		why := fmt.Sprintf("the context says %q", idle)
		if idle == "" {
			why = fmt.Sprintf("CPU %.0f%% is below %.0f%%", 100*cpu, 100*IdleThreshold)
		}
		return Suggestion{Action: "scale", Parameters: map[string]any{"replicas_delta": -1}, Impact: policy.ImpactLow,
			Confidence: 0.65, Rationale: fmt.Sprintf("Scale down by one replica: %s.", why)}, nil
	}

	// Rule 4: nothing to do.
	return Suggestion{Action: "no_change", Parameters: map[string]any{}, Impact: policy.ImpactLow, Confidence: 0.5,
		Rationale: "Nothing in the context or the metric hints calls for a change."}, nil
}

// knownActions are the actions the simulated model "has seen"; others cost 0.05.
var knownActions = []string{"configure", "no_change", "reduce_cost", "restart", "rollback", "scale"}

func (simulated) Assess(ctx context.Context, r AssessRequest) (Assessment, error) {
	if err := ctx.Err(); err != nil {
		return Assessment{}, err
	}
	params, err := canonical.Marshal(nonNil(r.Parameters))
	if err != nil {
		return Assessment{}, fmt.Errorf("model: assess: parameters: %w", err)
	}
	regions := slices.Clone(r.Regions)
	slices.Sort(regions)
	regions = slices.Compact(regions)
	h := fnv.New64a()
	for _, part := range []string{r.TenantID, r.Action, r.Target, strings.Join(regions, ","), string(params)} {
		_, _ = h.Write([]byte(part))
		_, _ = h.Write([]byte{0})
	}
	u := float64(h.Sum64()>>11) / (1 << 53) // top 53 bits: uniform in [0,1)
	base := 0.60 + 0.35*u
	p := base
	var notes []string
	if d, ok := number(r.Parameters["replicas_delta"]); ok && math.Abs(d) > 1 {
		pen := math.Min(0.25, 0.05*(math.Abs(d)-1))
		p -= pen
		notes = append(notes, fmt.Sprintf("-%.2f for changing %v replicas at once", pen, math.Abs(d)))
	}
	if n := len(regions); n > 2 {
		pen := math.Min(0.15, 0.03*float64(n-2))
		p -= pen
		notes = append(notes, fmt.Sprintf("-%.2f for touching %d regions", pen, n))
	}
	if !slices.Contains(knownActions, r.Action) {
		p -= 0.05
		notes = append(notes, fmt.Sprintf("-0.05 for the unfamiliar action %q", r.Action))
	}
	p = round4(math.Max(0.05, math.Min(0.95, p)))
	rationale := fmt.Sprintf("Simulated assessment: base %.2f from the change's fingerprint", base)
	if len(notes) > 0 {
		rationale += ", " + strings.Join(notes, ", ")
	}
	rationale += fmt.Sprintf("; success probability %.2f.", p)
	return Assessment{SuccessProbability: p, Rationale: rationale, Model: SimulatedModel}, nil
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// number reads a JSON-ish number (float64, int, int64, json.Number).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}
