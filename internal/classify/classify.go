// Package classify builds the decision policy's input for a manifest (internal/policy):
// what the coordinator classifies a proposal with at submission, agreement and
// enactment, and what a replay (sim-canary) re-classifies a recorded decision with. One
// place, so a replay classifies exactly as the decision was classified.
package classify

import (
	"errors"
	"math"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/actions"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/world"
)

// ReferenceRegions is the region count a blast radius of 1 corresponds to: the five
// default simulated regions.
const ReferenceRegions = 5

// Input is the policy input for manifest m proposed by tenant, and the change m asks
// the world for, without the size of the change: Size adds it from the change's plan.
func Input(tenant string, m *typesv1.Manifest) (policy.Input, world.Change) {
	c := manifestpkg.Change(tenant, m)
	return policy.Input{
		TenantID: tenant, Action: m.GetAction(), Target: m.GetTarget(), DeclaredImpact: m.GetImpact(),
		Regions: m.GetRegions(), Parameters: c.Parameters, TargetTenant: m.GetTenantId(),
		BlastRadius:   math.Min(1, float64(max(len(m.GetRegions()), 1))/ReferenceRegions),
		UnknownAction: !actions.Known(m.GetAction()),
	}, c
}

// Size adds to in the size of the change: the replica and monthly cost deltas between
// pre and plan, the change's dry-run plan against pre (planErr its error). It fails
// closed: when the size cannot be computed (the world rejected the plan, or the plan
// cannot be compared with pre) in says so and the policy classifies the change high,
// never the low a zero delta would give. Any other planErr is returned: there is no
// classification.
func Size(in *policy.Input, pre, plan world.Snapshot, planErr error) error {
	switch {
	case errors.Is(planErr, world.ErrRejected):
		in.ImpactUnknown = "the dry-run plan failed: " + planErr.Error()
		return nil
	case planErr != nil:
		return planErr
	}
	changes, err := world.Diff(pre, plan)
	if err != nil {
		in.ImpactUnknown = "the plan cannot be compared with the pre-state: " + err.Error()
		return nil
	}
	in.ReplicaDelta, in.CostDeltaMonthly = world.Totals(changes)
	if math.IsNaN(in.CostDeltaMonthly) || math.IsInf(in.CostDeltaMonthly, 0) {
		in.ImpactUnknown, in.CostDeltaMonthly = "the plan's cost change is not a finite number", 0
	}
	return nil
}
