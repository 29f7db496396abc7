package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

func testWorldStatePutGet(t *testing.T, s store.Store) {
	ws := s.WorldStates()
	_, err := ws.Get(ctx(t), "t", "eu-west-1", "svc/api")
	require.ErrorIs(t, err, store.ErrNotFound)

	in := &store.WorldState{TenantID: "t", Region: "eu-west-1", Target: "svc/api",
		State: []byte(`{"replicas":2}`), UpdatedAt: time.Date(2025, 3, 3, 3, 3, 3, 3003, time.UTC), Version: 99}
	orig := *in
	v1, err := ws.Put(ctx(t), in, 0)
	require.NoError(t, err)
	require.Equal(t, orig, *in, "Put must not modify its input")
	require.Equal(t, &store.WorldState{TenantID: "t", Region: "eu-west-1", Target: "svc/api",
		State: []byte(`{"replicas":2}`), Version: 1, UpdatedAt: time.Date(2025, 3, 3, 3, 3, 3, 3000, time.UTC)}, v1)

	got, err := ws.Get(ctx(t), "t", "eu-west-1", "svc/api")
	require.NoError(t, err)
	require.Equal(t, v1, got)

	v2, err := ws.Put(ctx(t), &store.WorldState{TenantID: "t", Region: "eu-west-1", Target: "svc/api", State: []byte(`{"replicas":3}`)}, 1)
	require.NoError(t, err)
	require.Equal(t, int64(2), v2.Version)
	require.Equal(t, []byte(`{"replicas":3}`), v2.State)
	require.True(t, v2.UpdatedAt.After(v1.UpdatedAt), "store clock when UpdatedAt is zero")

	v3, err := ws.Put(ctx(t), &store.WorldState{TenantID: "t", Region: "eu-west-1", Target: "svc/api", State: []byte(`{"replicas":4}`)}, -1)
	require.NoError(t, err, "negative expectedVersion writes unconditionally")
	require.Equal(t, int64(3), v3.Version)

	fresh, err := ws.Put(ctx(t), &store.WorldState{TenantID: "t", Target: "global", State: []byte(`[]`)}, -1)
	require.NoError(t, err, "unconditional put creates; region may be empty")
	require.Equal(t, int64(1), fresh.Version)
	got, err = ws.Get(ctx(t), "t", "", "global")
	require.NoError(t, err)
	require.Equal(t, fresh, got)

	_, err = ws.Put(ctx(t), &store.WorldState{TenantID: "t", Region: "r", Target: "", State: []byte(`{}`)}, -1)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = ws.Put(ctx(t), &store.WorldState{TenantID: "t", Region: "r", Target: "x", State: []byte(`{`)}, -1)
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testWorldStateVersionConflict(t *testing.T, s store.Store) {
	ws := s.WorldStates()
	put := func(state string, expected int64) (*store.WorldState, error) {
		return ws.Put(ctx(t), &store.WorldState{TenantID: "t", Region: "r", Target: "x", State: []byte(state)}, expected)
	}
	_, err := put(`{"v":1}`, 1)
	require.ErrorIs(t, err, store.ErrConflict, "expected version 1 but nothing exists")
	v1, err := put(`{"v":1}`, 0)
	require.NoError(t, err)
	_, err = put(`{"v":2}`, 0)
	require.ErrorIs(t, err, store.ErrConflict, "0 means must not exist")
	_, err = put(`{"v":2}`, 2)
	require.ErrorIs(t, err, store.ErrConflict, "stale version")
	got, err := ws.Get(ctx(t), "t", "r", "x")
	require.NoError(t, err)
	require.Equal(t, v1, got, "unchanged after conflicts")

	// Concurrent compare-and-swap: one winner.
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() { _, err := put(fmt.Sprintf(`{"writer":%d}`, i), 1); errs <- err }()
	}
	wins := 0
	for range n {
		if err := <-errs; err == nil {
			wins++
		} else {
			require.ErrorIs(t, err, store.ErrConflict)
		}
	}
	require.Equal(t, 1, wins)
}

func testWorldStateTenantIsolation(t *testing.T, s store.Store) {
	ws := s.WorldStates()
	_, err := ws.Put(ctx(t), &store.WorldState{TenantID: "a", Region: "r", Target: "x", State: []byte(`{"owner":"a"}`)}, 0)
	require.NoError(t, err)
	_, err = ws.Get(ctx(t), "b", "r", "x")
	require.ErrorIs(t, err, store.ErrNotFound)
	b, err := ws.Put(ctx(t), &store.WorldState{TenantID: "b", Region: "r", Target: "x", State: []byte(`{"owner":"b"}`)}, 0)
	require.NoError(t, err, "same key in another tenant is independent")
	require.Equal(t, int64(1), b.Version)
	a, err := ws.Get(ctx(t), "a", "r", "x")
	require.NoError(t, err)
	require.Equal(t, []byte(`{"owner":"a"}`), a.State)
}
