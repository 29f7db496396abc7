package world

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

func newWorld(t *testing.T) *Simulated {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return NewSimulated(st)
}

func TestReadIsDeterministicAndSeeded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := newWorld(t), newWorld(t)
	s1, err := a.Read(ctx, "t1", "svc", []string{"us-east", "eu-west", "eu-west"})
	require.NoError(t, err)
	s2, err := b.Read(ctx, "t1", "svc", []string{"eu-west", "us-east"})
	require.NoError(t, err)
	require.Equal(t, s1, s2, "same tenant/target/regions start from the same state in any order")
	require.Contains(t, string(s1.JSON), `"eu-west"`)
	def, err := a.Read(ctx, "t1", "svc", nil)
	require.NoError(t, err)
	require.Contains(t, string(def.JSON), `"default"`)
}

func TestApplyAndRestoreExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	c := Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: []string{"eu-west", "us-east"}, Parameters: map[string]any{"replicas": 12.0}}
	pre, err := w.Read(ctx, c.TenantID, c.Target, c.Regions)
	require.NoError(t, err)

	plan, err := w.Plan(ctx, c)
	require.NoError(t, err)
	after, err := w.Read(ctx, c.TenantID, c.Target, c.Regions)
	require.NoError(t, err)
	require.Equal(t, pre, after, "a dry run changes nothing")

	post, err := w.Apply(ctx, c, pre)
	require.NoError(t, err)
	require.Equal(t, plan, post)
	require.Contains(t, string(post.JSON), `"replicas":12`)
	now, err := w.Read(ctx, c.TenantID, c.Target, c.Regions)
	require.NoError(t, err)
	require.Equal(t, post, now)

	_, err = w.Apply(ctx, c, pre)
	require.True(t, errors.Is(err, store.ErrConflict), "applying against a stale pre-state is refused: %v", err)

	restored, err := w.Restore(ctx, c, pre)
	require.NoError(t, err)
	require.Equal(t, pre.JSON, restored.JSON, "byte-identical")
	require.Equal(t, pre.SHA256, restored.SHA256)
}

func TestPlanRejectsInvalidChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	for name, c := range map[string]Change{
		"no replicas":    {Action: "scale"},
		"too many":       {Action: "scale", Parameters: map[string]any{"replicas": 5000.0}},
		"fractional":     {Action: "scale", Parameters: map[string]any{"replicas": 1.5}},
		"unknown action": {Action: "teleport"},
		"config not map": {Action: "configure", Parameters: map[string]any{"config": "x"}},
		"string count":   {Action: "scale", Parameters: map[string]any{"replicas": "12"}},
		"both counts":    {Action: "scale", Parameters: map[string]any{"replicas": 3.0, "replicas_delta": 1.0}},
		"delta too far":  {Action: "scale", Parameters: map[string]any{"replicas_delta": -50.0}},
		"cost that adds": {Action: "reduce_cost", Parameters: map[string]any{"replicas_delta": 900.0}},
	} {
		c.TenantID, c.Target = "t1", "svc"
		_, err := w.Plan(ctx, c)
		require.ErrorIs(t, err, ErrRejected, name)
	}
	ok := Change{TenantID: "t1", Target: "svc", Action: "reduce_cost"}
	post, err := w.Plan(ctx, ok)
	require.NoError(t, err)
	require.NotEmpty(t, post.SHA256)
}
