// Package world reads the state of the things proposals change, per tenant, region and
// target. The simulated world keeps that state in the fabric's own store and seeds a
// deterministic initial state the first time a target is seen, so the same target in
// the same region always starts from the same state. A real provider (reading a
// cluster API) implements the same Reader interface.
package world

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
)

// DefaultRegion is used when a manifest names no region.
const DefaultRegion = "default"

// Snapshot is the state of one target across the regions a manifest touches, in the
// canonical JSON form that is hashed (P7).
type Snapshot struct {
	// JSON is the RFC 8785 canonical document:
	// {"regions":{"<region>":{...state...}},"target":"...","tenant_id":"..."}.
	JSON []byte
	// SHA256 is the lower-case hex SHA256 of JSON.
	SHA256 string
}

// Reader reads current state.
type Reader interface {
	// Read returns the state of target in each region (sorted, de-duplicated; an empty
	// list means DefaultRegion) for tenantID.
	Read(ctx context.Context, tenantID, target string, regions []string) (Snapshot, error)
}

// Simulated is the in-store world used in simulation mode.
type Simulated struct {
	st store.Store
}

// NewSimulated returns a simulated world backed by st.
func NewSimulated(st store.Store) *Simulated {
	return &Simulated{st: st}
}

// Read implements Reader; missing targets are seeded on first read.
func (s *Simulated) Read(ctx context.Context, tenantID, target string, regions []string) (Snapshot, error) {
	regions = normalise(regions)
	doc := map[string]any{"tenant_id": tenantID, "target": target}
	per := map[string]any{}
	for _, r := range regions {
		ws, err := s.readOrSeed(ctx, tenantID, r, target)
		if err != nil {
			return Snapshot{}, err
		}
		var v any
		if err := json.Unmarshal(ws.State, &v); err != nil {
			return Snapshot{}, fmt.Errorf("world: stored state of %s/%s: %w", r, target, err)
		}
		per[r] = v
	}
	doc["regions"] = per
	b, err := canonical.Marshal(doc)
	if err != nil {
		return Snapshot{}, fmt.Errorf("world: %w", err)
	}
	return Snapshot{JSON: b, SHA256: canonical.SHA256Hex(b)}, nil
}

func (s *Simulated) readOrSeed(ctx context.Context, tenantID, region, target string) (*store.WorldState, error) {
	ws, err := s.st.WorldStates().Get(ctx, tenantID, region, target)
	if err == nil {
		return ws, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("world: read %s/%s: %w", region, target, err)
	}
	seed, err := canonical.Marshal(InitialState(tenantID, region, target))
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	ws, err = s.st.WorldStates().Put(ctx, &store.WorldState{TenantID: tenantID, Region: region, Target: target, State: seed}, 0)
	if errors.Is(err, store.ErrConflict) {
		// Another request seeded it first; use theirs.
		return s.st.WorldStates().Get(ctx, tenantID, region, target)
	}
	if err != nil {
		return nil, fmt.Errorf("world: seed %s/%s: %w", region, target, err)
	}
	return ws, nil
}

// InitialState is the deterministic starting state of a simulated target: between 2
// and 9 replicas and an hourly cost derived from a hash of (tenant, region, target).
func InitialState(tenantID, region, target string) map[string]any {
	h := fnv.New64a()
	_, _ = h.Write([]byte(tenantID + "\x00" + region + "\x00" + target))
	sum := h.Sum64()
	replicas := 2 + int(sum%8)
	unit := 0.05 + float64((sum>>8)%20)/100 // USD per replica-hour, 0.05..0.24
	return map[string]any{
		"replicas":               replicas,
		"cost_per_replica_hour":  unit,
		"config":                 map[string]any{},
		"error_budget_remaining": 0.5 + float64((sum>>16)%50)/100,
	}
}

func normalise(regions []string) []string {
	if len(regions) == 0 {
		return []string{DefaultRegion}
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(regions))
	for _, r := range regions {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}
