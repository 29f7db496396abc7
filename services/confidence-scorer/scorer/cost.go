package scorer

import (
	"context"
	"errors"

	"github.com/decision-fabric/fabric/internal/world"
)

// regionChanges is what the proposal's change does to each region, planned by the
// world with the rules enactment applies (so the estimate prices exactly the change a
// dry run would make). A change the world rejects changes nothing: its cost is zero,
// and its dry run will fail.
func (s *Service) regionChanges(ctx context.Context, p ProposalInfo) ([]RegionInput, error) {
	pre, err := s.deps.World.Read(ctx, p.TenantID, p.Target, p.Regions)
	if err != nil {
		return nil, err
	}
	post, err := s.deps.World.Plan(ctx, world.Change{TenantID: p.TenantID, Action: p.Action, Target: p.Target,
		Regions: p.Regions, Parameters: p.Parameters})
	if errors.Is(err, world.ErrRejected) {
		post = pre
	} else if err != nil {
		return nil, err
	}
	changes, err := world.Diff(pre, post)
	if err != nil {
		return nil, err
	}
	out := make([]RegionInput, len(changes))
	for i, c := range changes {
		out[i] = RegionInput{Region: c.Region, Replicas: c.Replicas, CostPerReplicaHour: c.CostPerReplicaHour, ReplicasDelta: c.ReplicasDelta}
	}
	return out, nil
}
