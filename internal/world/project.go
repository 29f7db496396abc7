package world

import (
	"errors"
	"fmt"
)

// Project is s restricted to regions (normalised as Read does): the snapshot Read of
// those regions returns while the world is in state s. It fails when s lacks one of
// them.
func Project(s Snapshot, regions []string) (Snapshot, error) {
	d, err := decode(s)
	if err != nil {
		return Snapshot{}, err
	}
	out := decoded{TenantID: d.TenantID, Target: d.Target, Regions: map[string]map[string]any{}}
	for _, r := range normalise(regions) {
		st, ok := d.Regions[r]
		if !ok {
			return Snapshot{}, fmt.Errorf("world: the snapshot of %s has no region %q", d.Target, r)
		}
		out.Regions[r] = st
	}
	return encode(out)
}

// PlannerFrom is implemented by executors that can compute a change from a given state
// rather than the current one (the simulated world): what the change produces from a
// recorded pre-state, after the world has moved on.
type PlannerFrom interface {
	// PlanFrom is the state c produces from pre, changing nothing; ErrRejected when c
	// is invalid for pre, errors.ErrUnsupported when this executor cannot tell.
	PlanFrom(c Change, pre Snapshot) (Snapshot, error)
}

// PlanFrom implements PlannerFrom with the simulated semantics (the package's PlanFrom).
func (s *Simulated) PlanFrom(c Change, pre Snapshot) (Snapshot, error) { return PlanFrom(pre, c) }

// PlanFrom implements PlannerFrom for the tenant's executor when it can.
func (r Router) PlanFrom(c Change, pre Snapshot) (Snapshot, error) {
	if pf, ok := r.pick(c.TenantID).(PlannerFrom); ok {
		return pf.PlanFrom(c, pre)
	}
	return Snapshot{}, fmt.Errorf("world: the executor of tenant %s cannot plan from a past state: %w", c.TenantID, errors.ErrUnsupported)
}
