package scorer

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegionInputs(t *testing.T) {
	t.Parallel()
	world := []byte(`{"regions":{"us-east":{"replicas":6,"cost_per_replica_hour":0.2,"config":{}},` +
		`"eu-west":{"replicas":4,"cost_per_replica_hour":0.15}},"target":"serviceX","tenant_id":"t1"}`)
	for _, c := range []struct {
		name   string
		params map[string]any
		deltas []int
	}{
		{"delta applies everywhere", map[string]any{"replicas_delta": -1.0}, []int{-1, -1}},
		{"absolute target per region", map[string]any{"replicas": 5.0}, []int{1, -1}},
		{"delta wins over target", map[string]any{"replicas_delta": 2.0, "replicas": 5.0}, []int{2, 2}},
		{"no capacity change", map[string]any{"config": "x"}, []int{0, 0}},
		{"fractional replicas are not a change", map[string]any{"replicas_delta": 1.5}, []int{0, 0}},
		{"not a number", map[string]any{"replicas_delta": "2"}, []int{0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := regionInputs(world, c.params)
			require.NoError(t, err)
			require.Equal(t, []RegionInput{
				{Region: "eu-west", Replicas: 4, CostPerReplicaHour: 0.15, ReplicasDelta: c.deltas[0]},
				{Region: "us-east", Replicas: 6, CostPerReplicaHour: 0.2, ReplicasDelta: c.deltas[1]},
			}, got)
		})
	}
	_, err := regionInputs([]byte(`not json`), nil)
	require.Error(t, err)
}
