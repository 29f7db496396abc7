// Package world reads the state of the things proposals change, per tenant, region and
// target. The simulated world keeps that state in the fabric's own store and seeds a
// deterministic initial state the first time a target is seen, so the same target in
// the same region always starts from the same state. A real provider (reading a
// cluster API) implements the same Reader interface.
package world

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

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
	st    store.Store
	views viewCache
}

// NewSimulated returns a simulated world backed by st.
func NewSimulated(st store.Store) *Simulated {
	return &Simulated{st: st}
}

// Read implements Reader; missing targets are seeded on first read.
func (s *Simulated) Read(ctx context.Context, tenantID, target string, regions []string) (Snapshot, error) {
	v, err := s.read(ctx, tenantID, target, regions)
	if err != nil {
		return Snapshot{}, err
	}
	// The view is shared: the caller gets its own bytes.
	return Snapshot{JSON: bytes.Clone(v.snap.JSON), SHA256: v.snap.SHA256}, nil
}

// read reads (seeding what is missing) the stored states of target in regions with
// one query, and returns their view: the cached one when the stored bytes are the
// ones it was made from, else a new one.
func (s *Simulated) read(ctx context.Context, tenantID, target string, regions []string) (*view, error) {
	regions = normalise(regions)
	states, err := s.readOrSeed(ctx, tenantID, target, regions)
	if err != nil {
		return nil, err
	}
	if v := s.views.get(tenantID, target, regions, states); v != nil {
		return v, nil
	}
	v, err := newView(tenantID, target, regions, states)
	if err != nil {
		return nil, err
	}
	s.views.put(v)
	return v, nil
}

// readOrSeed returns the stored state of target in each of regions, seeding the
// missing ones in one transaction.
func (s *Simulated) readOrSeed(ctx context.Context, tenantID, target string, regions []string) ([][]byte, error) {
	rows, err := s.st.WorldStates().GetRegions(ctx, tenantID, target, regions)
	if err != nil {
		return nil, fmt.Errorf("world: read %s: %w", target, err)
	}
	if slices.Contains(rows, nil) {
		if err := s.st.InTx(ctx, func(tx store.Store) error { return seed(ctx, tx, tenantID, target, regions, rows) }); err != nil {
			return nil, err
		}
	}
	states := make([][]byte, len(rows))
	for i, ws := range rows {
		states[i] = ws.State
	}
	return states, nil
}

// seed stores the initial state of each region whose row is nil, and sets the row.
func seed(ctx context.Context, tx store.Store, tenantID, target string, regions []string, rows []*store.WorldState) error {
	for i, region := range regions {
		if rows[i] != nil {
			continue
		}
		state, err := canonical.Marshal(InitialState(tenantID, region, target))
		if err != nil {
			return fmt.Errorf("world: %w", err)
		}
		ws, err := tx.WorldStates().Put(ctx, &store.WorldState{TenantID: tenantID, Region: region, Target: target, State: state}, 0)
		if errors.Is(err, store.ErrConflict) {
			// Another request seeded it first (a create-only insert that finds the row
			// changes nothing, so the transaction goes on); use theirs.
			ws, err = tx.WorldStates().Get(ctx, tenantID, region, target)
		}
		if err != nil {
			return fmt.Errorf("world: seed %s/%s: %w", region, target, err)
		}
		rows[i] = ws
	}
	return nil
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

// normalise sorts and de-duplicates regions, DefaultRegion when there are none. It
// returns a new slice.
func normalise(regions []string) []string {
	if len(regions) == 0 {
		return []string{DefaultRegion}
	}
	out := slices.Clone(regions)
	slices.Sort(out)
	return slices.Compact(out)
}
