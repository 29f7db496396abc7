package negotiator

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/actions"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/redact"
)

// RegionLimits are the real limits of a region that runs as its own process
// (federation.region): what it refuses outright, before the capacity, cost, error
// budget and blackout rules of its RegionConfig (SimulatedAgent.Decide) run.
type RegionLimits struct {
	// Region is the region's state: name, capacity, cost ceiling, error budget.
	Region RegionConfig
	// AllowedActions the region accepts; empty: the catalogue's (internal/actions).
	AllowedActions []string
	// MaxReplicas is the most replicas a change may ask (or move by); 0: actions.MaxReplicas.
	MaxReplicas int64
}

// Decide is a region process's decision on offer m at now, first matching rule wins:
//
//  1. m is not a valid manifest (manifest.Validate: e.g. a negative replica count of a
//     known action): REJECT with the error.
//  2. m's action is not one the region allows: REJECT.
//  3. m names regions and not this one: REJECT.
//  4. parameters.replicas or replicas_delta not a whole number, negative replicas, or
//     beyond max_replicas: REJECT.
//  5. Otherwise the rules of SimulatedAgent.Decide (blackouts, error budget, capacity
//     counter-offer, cost ceiling).
func (l RegionLimits) Decide(a *SimulatedAgent, m *typesv1.Manifest, now time.Time) (negotiatorv1.Verdict, string, *typesv1.Manifest) {
	reject := func(format string, args ...any) (negotiatorv1.Verdict, string, *typesv1.Manifest) {
		return negotiatorv1.Verdict_VERDICT_REJECT, fmt.Sprintf(format, args...), nil
	}
	if err := manifestpkg.Validate(m); err != nil {
		return reject("region %s refuses an invalid manifest: %v", l.Region.Name, err)
	}
	allowed := l.AllowedActions
	if len(allowed) == 0 {
		allowed = actions.Names()
	}
	if !slices.Contains(allowed, m.GetAction()) {
		return reject("action %q is not allowed in region %s (allowed: %s)", redact.Echo(m.GetAction()), l.Region.Name, strings.Join(allowed, ", "))
	}
	if rs := m.GetRegions(); len(rs) > 0 && !slices.Contains(rs, l.Region.Name) {
		return reject("the change does not touch region %s (regions: %s)", l.Region.Name, strings.Join(rs, ", "))
	}
	maxReplicas := l.MaxReplicas
	if maxReplicas <= 0 {
		maxReplicas = actions.MaxReplicas
	}
	for _, key := range []string{"replicas", "replicas_delta"} {
		v, ok := m.GetParameters().GetFields()[key]
		if !ok {
			continue
		}
		n, isNum := v.GetKind().(*structpb.Value_NumberValue)
		if !isNum || math.IsNaN(n.NumberValue) || math.IsInf(n.NumberValue, 0) || n.NumberValue != math.Trunc(n.NumberValue) {
			return reject("parameters.%s: want a whole number", key)
		}
		x := n.NumberValue
		if key == "replicas" && x < 0 {
			return reject("parameters.replicas %s: a replica count cannot be negative", formatNumber(x))
		}
		if math.Abs(x) > float64(maxReplicas) {
			return reject("parameters.%s %s: beyond region %s's maximum of %d replicas", key, formatNumber(x), l.Region.Name, maxReplicas)
		}
	}
	return a.Decide(m, now)
}
