package world

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLinesShowsEachChangedLeaf(t *testing.T) {
	pre := Snapshot{JSON: []byte(`{"regions":{"eu-west":{"replicas":3,"cost_per_replica_hour":0.1},"us-east":{"replicas":2}},"target":"svc"}`)}
	post := Snapshot{JSON: []byte(`{"regions":{"eu-west":{"replicas":5,"cost_per_replica_hour":0.1},"ap-south":{"replicas":1},"us-east":{"replicas":2}},"target":"svc"}`)}
	lines, err := Lines(pre, post)
	require.NoError(t, err)
	require.Equal(t, []Line{
		{Path: "regions.ap-south.replicas", Before: "", After: "1"},
		{Path: "regions.eu-west.replicas", Before: "3", After: "5"},
	}, lines)
	_, err = Lines(Snapshot{JSON: []byte("{")}, post)
	require.Error(t, err)
}
