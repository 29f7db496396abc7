package scorer

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// Manifest parameters the cost estimate reads.
const (
	// ParamReplicasDelta changes every region's replica count by the same signed amount.
	ParamReplicasDelta = "replicas_delta"
	// ParamReplicas sets every region's replica count; the delta is per region.
	ParamReplicas = "replicas"
)

// worldDoc is the part of a world.Snapshot's JSON the scorer reads.
type worldDoc struct {
	Regions map[string]struct {
		Replicas           float64 `json:"replicas"`
		CostPerReplicaHour float64 `json:"cost_per_replica_hour"`
	} `json:"regions"`
}

// regionInputs combines the world state (canonical JSON from world.Reader) with the
// manifest's parameters: replicas_delta applies to every region; otherwise replicas is a
// target count and each region's delta is replicas minus its current count; with
// neither, nothing changes. Regions come out sorted by name.
func regionInputs(worldJSON []byte, params map[string]any) ([]RegionInput, error) {
	var doc worldDoc
	if err := json.Unmarshal(worldJSON, &doc); err != nil {
		return nil, fmt.Errorf("scorer: world state: %w", err)
	}
	names := make([]string, 0, len(doc.Regions))
	for name := range doc.Regions {
		names = append(names, name)
	}
	sort.Strings(names)
	delta, hasDelta := integer(params[ParamReplicasDelta])
	target, hasTarget := integer(params[ParamReplicas])
	out := make([]RegionInput, 0, len(names))
	for _, name := range names {
		st := doc.Regions[name]
		reg := RegionInput{Region: name, Replicas: int(math.Round(st.Replicas)), CostPerReplicaHour: st.CostPerReplicaHour}
		switch {
		case hasDelta:
			reg.ReplicasDelta = delta
		case hasTarget:
			reg.ReplicasDelta = target - reg.Replicas
		}
		out = append(out, reg)
	}
	return out, nil
}

// integer reads a whole JSON number within ±1e6 (larger is not a replica count).
func integer(v any) (int, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.Abs(f) > 1e6 || f != math.Trunc(f) {
		return 0, false
	}
	return int(f), true
}
