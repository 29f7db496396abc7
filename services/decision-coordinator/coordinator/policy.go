package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/world"
)

// referenceRegions is the region count a blast radius of 1 corresponds to: the five
// default simulated regions.
const referenceRegions = 5

type policyResult struct {
	decision policy.Decision
	record   *coordinatorv1.PolicyDecision
}

// evaluatePolicy runs the tenant's decision policy on the manifest, with the size and
// cost of the change computed from a dry-run plan against the pre-state. Cross-tenant
// proposals refused by policy are PERMISSION_DENIED (P5); a change over the tenant's cost
// cap is FAILED_PRECONDITION.
func (s *Service) evaluatePolicy(ctx context.Context, tenant string, m *typesv1.Manifest, pre world.Snapshot) (policyResult, error) {
	in := policy.Input{
		TenantID: tenant, Action: m.GetAction(), Target: m.GetTarget(), DeclaredImpact: m.GetImpact(),
		Regions: m.GetRegions(), Parameters: m.GetParameters().AsMap(), TargetTenant: m.GetTenantId(),
		BlastRadius: math.Min(1, float64(max(len(m.GetRegions()), 1))/referenceRegions),
	}
	plan, err := s.deps.World.Plan(ctx, world.Change{TenantID: tenant, Action: m.GetAction(), Target: m.GetTarget(), Regions: m.GetRegions(), Parameters: in.Parameters})
	if err == nil {
		if changes, derr := world.Diff(pre, plan); derr == nil {
			in.ReplicaDelta, in.CostDeltaMonthly = world.Totals(changes)
		}
	} else if !errors.Is(err, world.ErrRejected) {
		return policyResult{}, err
	} // a change the world rejects is still recorded; its dry run will fail with the reason
	d, err := s.deps.Policy.Evaluate(in)
	switch {
	case errors.Is(err, policy.ErrCrossTenantDenied):
		return policyResult{}, status.Errorf(codes.PermissionDenied, "cross-tenant proposal for %q refused by policy (P5)", m.GetTenantId())
	case errors.Is(err, policy.ErrCostCapExceeded):
		return policyResult{}, status.Errorf(codes.FailedPrecondition, "estimated cost change %.2f %s/month exceeds the tenant's cap of %.2f", in.CostDeltaMonthly, d.Currency, d.MaxMonthlyCostDelta)
	case errors.Is(err, policy.ErrInvalidInput):
		return policyResult{}, status.Errorf(codes.InvalidArgument, "%v", err)
	case err != nil:
		return policyResult{}, fmt.Errorf("coordinator: policy: %w", err)
	}
	return policyResult{decision: d, record: &coordinatorv1.PolicyDecision{
		ComputedImpact: d.ComputedImpact, Quorum: d.Quorum, ApprovalRequired: d.ApprovalRequired,
		ApprovalsRequired: int32(d.ApprovalsRequired), Reasons: d.Reasons,
		CostDeltaMonthly: math.Round(in.CostDeltaMonthly*100) / 100, Currency: d.Currency,
		DecisionTimeoutMs: d.DecisionTimeout.Milliseconds(), PolicyDigest: d.PolicyDigest,
	}}, nil
}
