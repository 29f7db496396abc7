package coordinator

import (
	"context"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
)

// owndataAddProposal stores a proposal of tenant with status for action on target.
func owndataAddProposal(t *testing.T, st store.Store, tenant, status, action, target string) *store.Proposal {
	t.Helper()
	raw, err := canonical.Marshal(map[string]any{"action": action, "target": target})
	require.NoError(t, err)
	p, _, err := st.Proposals().Create(context.Background(), &store.Proposal{
		ID: ulid.Make().String(), TenantID: tenant, Status: status, Manifest: raw, CreatedBy: "test"})
	require.NoError(t, err)
	return p
}

// The scorer's history evidence is counted by the coordinator from its own table:
// outcomes (ENACTED; ROLLED_BACK and DRY_RUN_FAILED) of the tenant's decisions with the
// same action and target, and with the same action on any target; other statuses,
// actions and tenants do not count, nor does the proposal itself.
func TestHistoryCountsFromCoordinatorTable(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) store.Config{
		"sqlite":   func(t *testing.T) store.Config { return store.Config{DataDir: t.TempDir()} },
		"postgres": func(t *testing.T) store.Config { return store.Config{PostgresDSN: pgtest.NewDSN(t)} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st, err := store.Open(context.Background(), open(t))
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			add := func(tenant, status, action, target string) *store.Proposal {
				return owndataAddProposal(t, st, tenant, status, action, target)
			}
			for range 3 {
				add("t1", stEnacted, "scale", "serviceX")
			}
			add("t1", stRolledBack, "scale", "serviceX")
			add("t1", stDryRunFailed, "scale", "serviceX")
			add("t1", stApproved, "scale", "serviceX")
			add("t1", stDenied, "scale", "serviceX")
			add("t1", stRolledBack, "restart", "serviceX")
			add("t2", stEnacted, "scale", "serviceX")
			add("t1", stEnacted, "scale", "serviceZ")
			add("t1", stRolledBack, "scale", "serviceZ")
			s := &Service{deps: Deps{Store: st}}

			agreed := add("t1", stAgreed, "scale", "serviceX")
			got, err := s.historyCounts(t.Context(), agreed, &typesv1.Manifest{Action: "scale", Target: "serviceX"})
			require.NoError(t, err)
			require.Equal(t, &scorerv1.HistoryCounts{ActionTargetSuccesses: 3, ActionTargetFailures: 2, ActionSuccesses: 4, ActionFailures: 3},
				got)

			// A proposal counted after it finished is not its own evidence.
			own := add("t1", stEnacted, "scale", "serviceX")
			got, err = s.historyCounts(t.Context(), own, &typesv1.Manifest{Action: "scale", Target: "serviceX"})
			require.NoError(t, err)
			require.Equal(t, int32(3), got.GetActionTargetSuccesses())
			require.Equal(t, int32(4), got.GetActionSuccesses())

			none, err := s.historyCounts(t.Context(), agreed, &typesv1.Manifest{Action: "migrate", Target: "serviceX"})
			require.NoError(t, err)
			require.Equal(t, &scorerv1.HistoryCounts{}, none)
		})
	}
}
