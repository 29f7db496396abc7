package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

const engineManifest = `{"action":"scale","target":"%s","regions":["eu-west","eu-central","us-east","us-west","ap-south"],"impact":"low","parameters":{"replicas_delta":1}}`

// TestDecisionCommitBudget counts the durable commits of one low-impact decision
// (submit → negotiate 5 regions → score → enact) on an idle fabric: at most 6, audit
// events included (they are staged in the commits of the changes they record; the
// relay's and the audit log's own commits are off the critical path and labelled).
func TestDecisionCommitBudget(t *testing.T) {
	const budget = 6
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st, Configure: fabrictest.InstantLowImpact(t)})
			c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
			// One decision first, so that nothing lazily created counts.
			warm := c.submit(t, fmt.Sprintf(engineManifest, "warm"))
			c.await(t, warm.ID, "PROPOSAL_STATUS_SCORED")

			var mu sync.Mutex
			var critical, background []string
			stop, ok := store.Observe(f.Store(), func(ctx context.Context) {
				mu.Lock()
				defer mu.Unlock()
				if l := store.CommitLabel(ctx); fabrictest.BackgroundCommit(ctx) {
					background = append(background, l)
				} else {
					critical = append(critical, l)
				}
			})
			require.True(t, ok)
			defer stop()
			p := c.submit(t, fmt.Sprintf(engineManifest, "budget"))
			c.await(t, p.ID, "PROPOSAL_STATUS_SCORED")
			r := c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			mu.Lock()
			got := append([]string(nil), critical...)
			mu.Unlock()
			t.Logf("%s: %d commits on the critical path (budget %d) by %q; %d off it", st, len(got), budget, got, len(background))
			require.LessOrEqual(t, len(got), budget, "commits on a low-impact decision's critical path: %q", got)
			require.GreaterOrEqual(t, len(got), 4, "the count sees the decision's commits at all")
		})
	}
}

// TestReadsNeverWrite: GET, list, the long poll and the negotiator's status change
// nothing — the tables of the state machine are the same before and after.
func TestReadsNeverWrite(t *testing.T) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st, Configure: fabrictest.InstantLowImpact(t)})
			c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
			var ids []string
			for i := range 3 {
				p := c.submit(t, fmt.Sprintf(engineManifest, fmt.Sprintf("read-%d", i)))
				p = c.await(t, p.ID, "PROPOSAL_STATUS_SCORED")
				ids = append(ids, p.ID)
			}
			r := c.post(t, "/proposals/"+ids[0]+"/enact", `{}`)
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))

			var commits atomic.Int64
			stop, ok := store.Observe(f.Store(), func(ctx context.Context) {
				if !fabrictest.BackgroundCommit(ctx) {
					commits.Add(1)
				}
			})
			require.True(t, ok)
			defer stop()
			before := stateTables(t, f.Store(), ids)
			for _, id := range ids {
				for _, path := range []string{"/proposals/" + id, "/proposals/" + id + "?wait_ms=200"} {
					g := f.Do(t, http.MethodGet, fabric.Coordinator, path, c.token, "")
					require.Equal(t, http.StatusOK, g.Status, string(g.Body))
				}
				p := c.get(t, id)
				n := f.Do(t, http.MethodGet, fabric.Negotiator, "/negotiate/"+p.Votes.NegotiationID+"/status", c.token, "")
				require.Equal(t, http.StatusOK, n.Status, string(n.Body))
			}
			l := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals", c.token, "")
			require.Equal(t, http.StatusOK, l.Status, string(l.Body))
			require.Zero(t, commits.Load(), "reads committed writes")
			require.Equal(t, before, stateTables(t, f.Store(), ids), "reads changed the state machine's tables")
		})
	}
}

// stateTables renders what the state machine owns of proposals ids: each proposal's
// status and version, and its negotiation's state.
func stateTables(t *testing.T, st store.Store, ids []string) string {
	t.Helper()
	var out []string
	for _, id := range ids {
		p, err := st.Proposals().Get(context.Background(), "t1", id)
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%s %s v%d %s", p.ID, p.Status, p.Version, p.UpdatedAt))
		ns, err := st.Negotiations().ListByProposal(context.Background(), "t1", id, 10)
		require.NoError(t, err)
		for _, n := range ns {
			out = append(out, fmt.Sprintf("  negotiation %s %s v%d", n.ID, n.State, n.Version))
		}
	}
	return strings.Join(out, "\n")
}

// TestTwoCoordinatorsMoveEachProposalOnce runs two all-in-one fabrics on one Postgres
// database, submits 500 proposals to both at once, and checks that every proposal was
// moved through each state exactly once: one audit event per transition, one
// negotiation per proposal, and every proposal SCORED. One coordinator stops while
// its proposals are in flight, so the other claims and finishes them.
func TestTwoCoordinatorsMoveEachProposalOnce(t *testing.T) {
	const proposals = 500
	dsn := pgtest.NewDSN(t)
	files := fabrictest.InstantLowImpact(t)
	// Replicas share their keys (region key seed, service and signing keys): one data
	// directory, as one mounted secret would be.
	shared := t.TempDir()
	start := func() *fabrictest.Fabric {
		return fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.Postgres, Configure: func(c *config.Config) {
			files(c)
			c.DataDir = shared
			c.Integrations.PostgresDSN = config.Secret(dsn)
			c.Engine.Lease = config.Duration(2 * time.Second)
			c.Engine.Sweep = config.Duration(100 * time.Millisecond)
		}})
	}
	a, b := start(), start()
	fabrics := []*fabrictest.Fabric{a, b}
	var wg sync.WaitGroup
	ids := make([]string, proposals)
	errs := make(chan error, proposals)
	sem := make(chan struct{}, 16)
	for i := range proposals {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f := fabrics[i%2]
			r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", f.Token(t, "t1", auth.RoleProposer),
				`{"tenant_id":"t1","manifest":`+fmt.Sprintf(engineManifest, fmt.Sprintf("race-%d", i))+`}`)
			if r.Status != http.StatusOK {
				errs <- fmt.Errorf("submit %d: %d %s", i, r.Status, r.Body)
				return
			}
			var out struct{ Proposal proposal }
			if err := json.Unmarshal(r.Body, &out); err != nil {
				errs <- err
				return
			}
			ids[i] = out.Proposal.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// Stop one coordinator while its proposals are in flight: it releases its leases and
	// the other claims and finishes them.
	a.Stop(t)
	st := b.Store()
	require.Eventually(t, func() bool {
		for _, id := range ids {
			p, err := st.Proposals().Get(context.Background(), "t1", id)
			if err != nil || p.Status != "SCORED" {
				return false
			}
		}
		return true
	}, 120*time.Second, 100*time.Millisecond, "every proposal SCORED")

	// Each proposal moved through each state once: one audit event per transition
	// (the outbox is drained into the audit log; read the log), one negotiation.
	require.Eventually(t, func() bool {
		n, err := st.Outbox().List(context.Background(), 0, time.Time{}, 10)
		return err == nil && len(n) == 0
	}, 60*time.Second, 100*time.Millisecond, "the audit outbox drains")
	for _, id := range ids {
		ns, err := st.Negotiations().ListByProposal(context.Background(), "t1", id, 10)
		require.NoError(t, err)
		require.Len(t, ns, 1, "proposal %s has one negotiation", id)
		entries, err := st.AuditLog().ListByProposal(context.Background(), "t1", id, 1000)
		require.NoError(t, err)
		counts := map[string]int{}
		for _, e := range entries {
			if strings.HasPrefix(e.Event, "proposal.") {
				counts[e.Event]++
			}
		}
		var events []string
		for e, n := range counts {
			require.Equal(t, 1, n, "proposal %s: %s recorded %d times", id, e, n)
			events = append(events, e)
		}
		sort.Strings(events)
		require.Equal(t, []string{"proposal.agreed", "proposal.negotiating", "proposal.scored", "proposal.submitted"}, events, "proposal %s", id)
		p, err := st.Proposals().Get(context.Background(), "t1", id)
		require.NoError(t, err)
		require.Equal(t, int64(4), p.Version, "proposal %s: four versions, one per state", id)
	}
}
