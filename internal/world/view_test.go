package world

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
)

// slowRead is Read as it was before views and batched reads: each region read on its
// own, decoded, and the whole document encoded again. The fast path must give the
// same bytes.
func slowRead(t *testing.T, st store.Store, tenantID, target string, regions []string) Snapshot {
	t.Helper()
	per := map[string]any{}
	for _, r := range normalise(regions) {
		ws, err := st.WorldStates().Get(context.Background(), tenantID, r, target)
		require.NoError(t, err)
		var v any
		require.NoError(t, json.Unmarshal(ws.State, &v))
		per[r] = v
	}
	b, err := canonical.Marshal(map[string]any{"tenant_id": tenantID, "target": target, "regions": per})
	require.NoError(t, err)
	return Snapshot{JSON: b, SHA256: canonical.SHA256Hex(b)}
}

func putState(t *testing.T, st store.Store, region, target, state string) {
	t.Helper()
	_, err := st.WorldStates().Put(context.Background(), &store.WorldState{TenantID: "t1", Region: region, Target: target, State: []byte(state)}, -1)
	require.NoError(t, err)
}

func TestCachedReadsAndPlansMatchTheSlowPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	regions := []string{"us-east", "eu-west", "ap-south"}
	// One region stored in a non-canonical form (spacing, key order, number format),
	// as another writer might: the snapshot is canonical all the same.
	putState(t, w.st, "ap-south", "svc", `{ "replicas": 4.0, "config": {"b": 1e0, "a": "x"}, "cost_per_replica_hour": 0.10 }`)
	c := Change{TenantID: "t1", Action: "configure", Target: "svc", Regions: regions, Parameters: map[string]any{"config": map[string]any{"c": true}}}

	first, err := w.Read(ctx, "t1", "svc", regions) // seeds, then makes the view
	require.NoError(t, err)
	for i := range 3 { // later reads and plans use the cached view
		got, err := w.Read(ctx, "t1", "svc", regions)
		require.NoError(t, err)
		want := slowRead(t, w.st, "t1", "svc", regions)
		require.Equal(t, want, got, "read %d", i)
		require.Equal(t, first, got)
		require.Equal(t, canonical.SHA256Hex(got.JSON), got.SHA256)

		planned, err := w.Plan(ctx, c)
		require.NoError(t, err)
		d, err := decode(want)
		require.NoError(t, err)
		slowPlan, err := plan(d, c)
		require.NoError(t, err)
		require.Equal(t, slowPlan, planned, "plan %d", i)
	}
	require.Len(t, w.views.m, 1)

	// The view's decoded document was not changed by planning.
	again, err := w.Plan(ctx, c)
	require.NoError(t, err)
	fresh, err := NewSimulated(w.st).Plan(ctx, c)
	require.NoError(t, err)
	require.Equal(t, fresh, again)
}

// Apply decodes a pre-state equal to the cached view's snapshot from the view: the
// post-state and the stored bytes are those the slow path gives.
func TestApplyFromAViewStoresTheSlowPathsBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	regions := []string{"us-east", "eu-west"}
	c := Change{TenantID: "t1", Action: "configure", Target: "svc", Regions: regions, Parameters: map[string]any{"config": map[string]any{
		"int": 7, "big": 1e21, "small": 1e-7, "text": "<é\u2028\"\n>", "list": []any{1.5, "x", nil, true}, "nested": map[string]any{"z": 1, "a": 2},
	}}}
	pre, err := w.Read(ctx, c.TenantID, c.Target, regions)
	require.NoError(t, err)
	d, err := decode(pre)
	require.NoError(t, err)
	want, err := plan(d, c)
	require.NoError(t, err)

	post, err := w.Apply(ctx, c, Snapshot{JSON: bytes.Clone(pre.JSON), SHA256: pre.SHA256})
	require.NoError(t, err)
	require.Equal(t, want, post)
	wd, err := decode(want)
	require.NoError(t, err)
	for _, r := range regions {
		ws, err := w.st.WorldStates().Get(ctx, "t1", r, "svc")
		require.NoError(t, err)
		stored, err := canonical.Marshal(wd.Regions[r])
		require.NoError(t, err)
		require.Equal(t, string(stored), string(ws.State), r)
	}
	now, err := w.Read(ctx, c.TenantID, c.Target, regions)
	require.NoError(t, err)
	require.Equal(t, post, now)
	require.Equal(t, slowRead(t, w.st, "t1", "svc", regions), now)
}

func TestReadReturnsItsOwnBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	a, err := w.Read(ctx, "t1", "svc", nil)
	require.NoError(t, err)
	want := string(a.JSON)
	clear(a.JSON) // a caller scribbling on its snapshot
	b, err := w.Read(ctx, "t1", "svc", nil)
	require.NoError(t, err)
	require.Equal(t, want, string(b.JSON))
}

// Another writer (another process on the same database, or the store directly) changes
// a state the view was made from: the next read sees it.
func TestViewsNeverMaskAChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	other := NewSimulated(w.st) // another process: its own cache
	regions := []string{"eu-west", "us-east"}
	before, err := w.Read(ctx, "t1", "svc", regions)
	require.NoError(t, err)

	// Same length, one byte different.
	ws, err := w.st.WorldStates().Get(ctx, "t1", "us-east", "svc")
	require.NoError(t, err)
	changed := []byte(string(ws.State))
	changed[len(changed)-2]-- // replicas, the last value, is 2..9: one fewer
	putState(t, w.st, "us-east", "svc", string(changed))
	after, err := w.Read(ctx, "t1", "svc", regions)
	require.NoError(t, err)
	require.NotEqual(t, before.SHA256, after.SHA256)
	require.Equal(t, slowRead(t, w.st, "t1", "svc", regions), after)

	// A change applied through another Simulated.
	c := Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: regions, Parameters: map[string]any{"replicas": 7.0}}
	post, err := other.Apply(ctx, c, after)
	require.NoError(t, err)
	now, err := w.Read(ctx, "t1", "svc", regions)
	require.NoError(t, err)
	require.Equal(t, post, now)
	plan, err := w.Plan(ctx, Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: regions, Parameters: map[string]any{"replicas_delta": 1.0}})
	require.NoError(t, err)
	require.Contains(t, string(plan.JSON), `"replicas":8`)

	// Restoring the old bytes brings the old snapshot back, byte for byte.
	restored, err := other.Restore(ctx, c, before)
	require.NoError(t, err)
	require.Equal(t, before, restored)
	now, err = w.Read(ctx, "t1", "svc", regions)
	require.NoError(t, err)
	require.Equal(t, before, now)
}

func TestViewCacheIsBounded(t *testing.T) {
	t.Parallel()
	var c viewCache
	for i := range maxViews + 10 {
		c.put(&view{tenantID: "t1", target: fmt.Sprint(i), regions: []string{DefaultRegion}})
	}
	require.Len(t, c.m, maxViews)
	v := &view{tenantID: "t1", target: "x", regions: []string{"a", "b"}, states: [][]byte{[]byte(`{}`), []byte(`[]`)}}
	c.put(v)
	require.Same(t, v, c.get("t1", "x", []string{"a", "b"}, [][]byte{[]byte(`{}`), []byte(`[]`)}))
	require.Nil(t, c.get("t1", "x", []string{"a", "b"}, [][]byte{[]byte(`{}`), []byte(`[ ]`)}), "other bytes")
	require.Nil(t, c.get("t1", "x", []string{"a\x00b"}, [][]byte{[]byte(`{}`)}), "a key that joins alike")
	require.Nil(t, c.get("t2", "x", []string{"a", "b"}, [][]byte{[]byte(`{}`), []byte(`[]`)}), "another tenant")
}

// Concurrent readers, planners and appliers of one target (run with -race): every
// read is a snapshot the slow path also gives for some stored state, and the
// optimistic concurrency of Apply still refuses stale pre-states.
func TestViewsUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	regions := []string{"eu-west", "us-east"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				pre, err := w.Read(ctx, "t1", "svc", regions)
				if err != nil {
					t.Error(err)
					return
				}
				c := Change{TenantID: "t1", Action: "scale", Target: "svc", Regions: regions, Parameters: map[string]any{"replicas": float64(g*100 + i)}}
				if _, err := w.Plan(ctx, c); err != nil {
					t.Error(err)
					return
				}
				if _, err := w.Apply(ctx, c, pre); err != nil && !errors.Is(err, store.ErrConflict) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := w.Read(ctx, "t1", "svc", regions)
	require.NoError(t, err)
	require.Equal(t, slowRead(t, w.st, "t1", "svc", regions), got)
}

// Two processes on one Postgres database seed the same new targets at once: each
// read succeeds (a region the other seeded first is taken from it) and both see the
// same snapshots; a change made by one is seen by the other's next read.
func TestTwoProcessesOnPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDSN(t)
	var worlds [2]*Simulated
	for i := range worlds {
		st, err := store.Open(ctx, store.Config{PostgresDSN: dsn})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		worlds[i] = NewSimulated(st)
	}
	regions := []string{"eu-west", "us-east", "ap-south"}
	const targets = 10
	var got [2][targets]Snapshot
	var wg sync.WaitGroup
	for p, w := range worlds {
		wg.Go(func() {
			for i := range targets {
				s, err := w.Read(ctx, "t1", fmt.Sprint("svc-", i), regions)
				if err != nil {
					t.Error(err)
					return
				}
				got[p][i] = s
			}
		})
	}
	wg.Wait()
	require.Equal(t, got[0], got[1])

	c := Change{TenantID: "t1", Action: "scale", Target: "svc-0", Regions: regions, Parameters: map[string]any{"replicas": 9.0}}
	post, err := worlds[0].Apply(ctx, c, got[0][0])
	require.NoError(t, err)
	now, err := worlds[1].Read(ctx, "t1", "svc-0", regions)
	require.NoError(t, err)
	require.Equal(t, post, now)
	_, err = worlds[1].Apply(ctx, c, got[1][0])
	require.ErrorIs(t, err, store.ErrConflict, "the other process's pre-state is stale")
}

// A projection of a snapshot is what Read returns for those regions.
func TestProjectIsTheReadOfTheRegions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	w := NewSimulated(st)
	all, err := w.Read(ctx, "t1", "svc", []string{"us-east", "eu-west", "ap-south"})
	require.NoError(t, err)
	one, err := w.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	p, err := Project(all, []string{"eu-west"})
	require.NoError(t, err)
	require.Equal(t, one, p)
	two, err := w.Read(ctx, "t1", "svc", []string{"us-east", "ap-south"})
	require.NoError(t, err)
	p, err = Project(all, []string{"us-east", "ap-south", "us-east"})
	require.NoError(t, err)
	require.Equal(t, two.SHA256, p.SHA256)
	_, err = Project(all, []string{"mars"})
	require.Error(t, err)
}
