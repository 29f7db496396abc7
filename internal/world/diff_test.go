package world

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDiffAndTotals(t *testing.T) {
	pre := Snapshot{JSON: []byte(`{"regions":{"us-east":{"replicas":6,"cost_per_replica_hour":0.2},"eu-west":{"replicas":4,"cost_per_replica_hour":0.15}}}`)}
	post := Snapshot{JSON: []byte(`{"regions":{"us-east":{"replicas":5,"cost_per_replica_hour":0.2},"eu-west":{"replicas":6,"cost_per_replica_hour":0.15}}}`)}
	d, err := Diff(pre, post)
	require.NoError(t, err)
	require.Equal(t, []RegionChange{
		{Region: "eu-west", Replicas: 4, CostPerReplicaHour: 0.15, ReplicasDelta: 2},
		{Region: "us-east", Replicas: 6, CostPerReplicaHour: 0.2, ReplicasDelta: -1},
	}, d)
	replicas, cost := Totals(d)
	require.Equal(t, int64(1), replicas)
	require.InDelta(t, (2*0.15-0.2)*HoursPerMonth, cost, 1e-9)
	_, err = Diff(Snapshot{JSON: []byte(`x`)}, post)
	require.Error(t, err)
}
