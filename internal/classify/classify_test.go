package classify_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/classify"
	"github.com/decision-fabric/fabric/internal/world"
)

func TestInputAndSize(t *testing.T) {
	params, err := structpb.NewStruct(map[string]any{"replicas_delta": 2})
	require.NoError(t, err)
	m := &typesv1.Manifest{Action: "scale", Target: "svc", Regions: []string{"eu-west", "us-east"}, Impact: "low", Parameters: params}
	in, c := classify.Input("t1", m)
	require.Equal(t, "t1", c.TenantID)
	require.InDelta(t, 0.4, in.BlastRadius, 1e-9)
	require.False(t, in.UnknownAction)

	pre := world.Snapshot{JSON: []byte(`{"regions":{"eu-west":{"replicas":3,"cost_per_replica_hour":0.1},"us-east":{"replicas":1,"cost_per_replica_hour":0.2}}}`)}
	post, err := world.PlanFrom(pre, c)
	require.NoError(t, err)
	require.NoError(t, classify.Size(&in, pre, post, nil))
	require.EqualValues(t, 4, in.ReplicaDelta)
	require.InDelta(t, (2*0.1+2*0.2)*world.HoursPerMonth, in.CostDeltaMonthly, 1e-6)
	require.Empty(t, in.ImpactUnknown)

	// Fails closed: a rejected plan or a plan that cannot be compared is "impact unknown".
	rejected, _ := classify.Input("t1", m)
	require.NoError(t, classify.Size(&rejected, pre, world.Snapshot{}, fmt.Errorf("%w: no", world.ErrRejected)))
	require.Contains(t, rejected.ImpactUnknown, "the dry-run plan failed")
	garbled, _ := classify.Input("t1", m)
	require.NoError(t, classify.Size(&garbled, pre, world.Snapshot{JSON: []byte("{")}, nil))
	require.Contains(t, garbled.ImpactUnknown, "cannot be compared")
	// Any other failure: no classification.
	other, _ := classify.Input("t1", m)
	require.Error(t, classify.Size(&other, pre, world.Snapshot{}, errors.New("world unreachable")))

	unknown, _ := classify.Input("t1", &typesv1.Manifest{Action: "wipe", Target: "svc"})
	require.True(t, unknown.UnknownAction)
	require.InDelta(t, 0.2, unknown.BlastRadius, 1e-9)
}
