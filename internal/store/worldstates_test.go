package store_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

func TestWorldStateGetRegions(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB) store.Store{"sqlite": newSQLite, "postgres": newPostgres} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testGetRegions(t, open(t))
		})
	}
}

// testGetRegions holds GetRegions to what Get returns region by region.
func testGetRegions(t *testing.T, s store.Store) {
	ctx := t.Context()
	ws := s.WorldStates()
	put := func(tenant, region, target, state string) {
		_, err := ws.Put(ctx, &store.WorldState{TenantID: tenant, Region: region, Target: target, State: []byte(state)}, -1)
		require.NoError(t, err)
	}
	put("t", "eu", "svc", `{"r":"eu"}`)
	put("t", "us", "svc", `{"r":"us"}`)
	put("t", "us", "svc", `{"r":"us2"}`) // version 2
	put("t", "ap", "other", `{}`)        // another target
	put("u", "ap", "svc", `{}`)          // another tenant

	// check compares GetRegions with Get of each region.
	check := func(s store.Store, regions []string) []*store.WorldState {
		t.Helper()
		got, err := s.WorldStates().GetRegions(ctx, "t", "svc", regions)
		require.NoError(t, err)
		require.Len(t, got, len(regions))
		for i, r := range regions {
			one, err := s.WorldStates().Get(ctx, "t", r, "svc")
			if err != nil {
				require.ErrorIs(t, err, store.ErrNotFound)
				require.Nil(t, got[i], r)
				continue
			}
			require.Equal(t, one, got[i], r)
		}
		return got
	}
	got := check(s, []string{"us", "ap", "eu", "us", "none"})
	require.Equal(t, int64(2), got[0].Version)
	require.Nil(t, got[1], "ap is another tenant's and another target's")
	require.Empty(t, check(s, nil))

	many := make([]string, 40) // past the prebuilt query texts and the prepared statements
	for i := range many {
		many[i] = fmt.Sprintf("r%02d", i)
		put("t", many[i], "svc", fmt.Sprintf(`{"i":%d}`, i))
	}
	for _, r := range check(s, many) {
		require.NotNil(t, r)
	}

	// Inside a transaction it sees the transaction's own writes.
	require.NoError(t, s.InTx(ctx, func(tx store.Store) error {
		_, err := tx.WorldStates().Put(ctx, &store.WorldState{TenantID: "t", Region: "ap", Target: "svc", State: []byte(`{"new":1}`)}, 0)
		require.NoError(t, err)
		got := check(tx, []string{"ap", "eu"})
		require.JSONEq(t, `{"new":1}`, string(got[0].State))
		return nil
	}))
}
