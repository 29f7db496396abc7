// Package tests runs the decision coordinator alone (its own process module, as
// services/decision-coordinator/main.go does) and checks the spec's I.4.1 behaviour
// over REST and gRPC.
package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func start(t *testing.T, st fabrictest.Store) *fabrictest.Fabric {
	return fabrictest.Start(t, fabrictest.Options{Targets: []string{fabric.Coordinator}, Store: st})
}

func TestRunsAlone(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	require.Equal(t, http.StatusOK, f.Do(t, http.MethodGet, fabric.Coordinator, "/health", "", "").Status)
	// Other services are not part of this process.
	_, err := http.Get(f.URL(fabric.Composer) + "/health")
	require.Error(t, err)
}

// TestConcurrentRetriesCreateOnce: clients retrying one submission concurrently with the
// same Idempotency-Key get one proposal between them, on both stores.
func TestConcurrentRetriesCreateOnce(t *testing.T) {
	t.Parallel()
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := start(t, st)
			tok := f.Token(t, "t1", auth.RoleProposer)
			ids := make([]string, 8)
			var wg sync.WaitGroup
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok,
						`{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX"}}`, "Idempotency-Key: same")
					var body struct {
						Proposal struct{ ID string } `json:"proposal"`
					}
					if r.Status == http.StatusOK && json.Unmarshal(r.Body, &body) == nil {
						ids[i] = body.Proposal.ID
					}
				}()
			}
			wg.Wait()
			for _, id := range ids {
				require.Equal(t, ids[0], id)
			}
			require.NotEmpty(t, ids[0])
		})
	}
}

func TestListFiltersByStatus(t *testing.T) {
	t.Parallel()
	f := start(t, fabrictest.SQLite)
	ctx := fabrictest.WithToken(context.Background(), f.Token(t, "t1", auth.RoleProposer))
	c := coordinatorv1.NewCoordinatorServiceClient(f.Conn(t, fabric.Coordinator))
	for _, target := range []string{"a", "b", "c"} {
		_, err := c.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: &typesv1.Manifest{Action: "scale", Target: target}})
		require.NoError(t, err)
	}
	all, err := c.ListProposals(ctx, &coordinatorv1.ListProposalsRequest{})
	require.NoError(t, err)
	require.Len(t, all.GetProposals(), 3)
	require.Equal(t, "c", all.GetProposals()[0].GetManifest().GetTarget(), "newest first")
	agreed, err := c.ListProposals(ctx, &coordinatorv1.ListProposalsRequest{Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_AGREED})
	require.NoError(t, err)
	require.Empty(t, agreed.GetProposals())
}
