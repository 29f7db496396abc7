package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/world"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// eachStore runs scenario against the all-in-one fabric on SQLite and on Postgres,
// configured by configure (may be nil). The attacks below are about what the
// coordinator decides, not about the topology; TestDecisionPath covers both.
func eachStore(t *testing.T, configure func(t *testing.T, c *config.Config), scenario func(t *testing.T, f *fabrictest.Fabric)) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st, Configure: func(c *config.Config) {
				if configure != nil {
					configure(t, c)
				}
			}})
			scenario(t, f)
		})
	}
}

// list is the tenant's stored proposals.
func (c client) list(t *testing.T) []proposal {
	t.Helper()
	r := c.f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals", c.token, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct{ Proposals []proposal }
	require.NoError(t, json.Unmarshal(r.Body, &out))
	return out.Proposals
}

// TestAttackOutOfSchemaParameters (issue #9, "Why" 1): a parameter the action's schema
// does not allow — too big (5000, the value the regions then clamped to an unapproved
// 40), absurd (1e308), negative, fractional, a string, both counts — is a 400 naming
// the field, and nothing is stored.
func TestAttackOutOfSchemaParameters(t *testing.T) {
	eachStore(t, nil, func(t *testing.T, f *fabrictest.Fabric) {
		c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
		for _, tc := range []struct{ params, want string }{
			{`{"replicas":5000}`, "manifest.parameters.replicas: must be an integer in [0, 1000], not 5000"},
			{`{"replicas":1e308}`, "manifest.parameters.replicas: must be an integer in [0, 1000], not 1e+308"},
			{`{"replicas":-1}`, "manifest.parameters.replicas: must be an integer in [0, 1000], not -1"},
			{`{"replicas":2.5}`, "manifest.parameters.replicas: must be an integer in [0, 1000], not 2.5"},
			{`{"replicas":"12"}`, "manifest.parameters.replicas: must be an integer in [0, 1000], not a string"},
			{`{"replicas_delta":1e6}`, "manifest.parameters.replicas_delta: must be an integer in [-1000, 1000]"},
			{`{"replicas":3,"replicas_delta":1}`, "manifest.parameters.replicas_delta: scale needs exactly one of"},
		} {
			r := c.post(t, "/proposals", `{"tenant_id":"t1","manifest":{"action":"scale","target":"svc","regions":["eu-west"],"parameters":`+tc.params+`}}`)
			require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", tc.params, r.Body)
			require.Contains(t, string(r.Body), tc.want, tc.params)
		}
		require.Empty(t, c.list(t), "bad input stores nothing")
	})
}

// TestAttackUnknownVerbs (issue #9, "Why" 1): an action outside the catalogue is
// refused by default (400 naming it and the known ones), never classified low, and
// nothing is stored.
func TestAttackUnknownVerbs(t *testing.T) {
	eachStore(t, nil, func(t *testing.T, f *fabrictest.Fabric) {
		c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
		for _, verb := range []string{"drop-database", "wipe", "shutdown"} {
			r := c.post(t, "/proposals", `{"tenant_id":"t1","manifest":{"action":"`+verb+`","target":"svc","regions":["eu-west"]}}`)
			require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", verb, r.Body)
			require.Contains(t, string(r.Body), fmt.Sprintf(`manifest.action: unknown action \"%s\" (known: configure, reduce_cost, scale)`, verb))
		}
		require.Empty(t, c.list(t), "a refused verb stores nothing")
	})
}

// TestUnknownActionsHighByPolicy: a tenant whose policy says `unknown_actions: high`
// may propose an unknown verb; it is high impact, dry run, and waits for an approver.
func TestUnknownActionsHighByPolicy(t *testing.T) {
	policyFile := func(t *testing.T, c *config.Config) {
		c.PolicyFile = filepath.Join(t.TempDir(), "policy.yaml")
		require.NoError(t, os.WriteFile(c.PolicyFile, []byte("version: 1\ntenants:\n  lab:\n    unknown_actions: high\n"), 0o600))
	}
	eachStore(t, policyFile, func(t *testing.T, f *fabrictest.Fabric) {
		c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
		r := c.post(t, "/proposals", `{"tenant_id":"t1","manifest":{"action":"wipe","target":"svc","regions":["eu-west"]}}`)
		require.Equal(t, http.StatusBadRequest, r.Status, "other tenants still refuse it: %s", r.Body)

		lab := client{f: f, token: f.Token(t, "lab", auth.RoleProposer)}
		r = lab.f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", lab.token, `{"tenant_id":"lab","manifest":{"action":"wipe","target":"svc","regions":["eu-west"]}}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var out struct{ Proposal proposal }
		require.NoError(t, json.Unmarshal(r.Body, &out))
		require.Equal(t, "high", out.Proposal.Impact)
		require.True(t, out.Proposal.DryRun)
		require.True(t, out.Proposal.Policy.ApprovalRequired)
		p := lab.await(t, out.Proposal.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		r = lab.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	})
}

// tallTarget is a target whose simulated state in eu-west for t1 starts with at least
// min replicas.
func tallTarget(t *testing.T, minReplicas int) (string, int) {
	t.Helper()
	for i := range 1000 {
		name := fmt.Sprintf("svc-%d", i)
		if n := world.InitialState("t1", "eu-west", name)["replicas"].(int); n >= minReplicas {
			return name, n
		}
	}
	t.Fatal("no target tall enough")
	return "", 0
}

// TestAttackCounterOfferRaisesImpact (issue #9, "Why" 1): the regions' counter-offer
// is what would be enacted, so the policy runs again on it. A low-impact scale-in by
// one replica that a region (capacity 1) counters down to one replica is a change of
// several replicas: the proposal is reclassified, audited as such, and waits for an
// approver instead of being enacted.
func TestAttackCounterOfferRaisesImpact(t *testing.T) {
	target, replicas := tallTarget(t, 5)
	regions := func(t *testing.T, c *config.Config) {
		c.RegionsFile = filepath.Join(t.TempDir(), "regions.yaml")
		require.NoError(t, os.WriteFile(c.RegionsFile, []byte("quorum_rule: majority\nregions:\n  - {name: eu-west, capacity: 1}\n"), 0o600))
	}
	eachStore(t, regions, func(t *testing.T, f *fabrictest.Fabric) {
		c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
		p := c.submit(t, fmt.Sprintf(`{"action":"scale","target":%q,"regions":["eu-west"],"parameters":{"replicas":%d}}`, target, replicas-1))
		// It was classified low on submission (the reasons below say so); the submit
		// response may already show the agreement, when the regions answered at once.
		p = c.await(t, p.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		require.Equal(t, "medium", p.Impact, "the agreed change (to 1 replica) is medium impact")
		require.True(t, p.Policy.ApprovalRequired)
		require.True(t, p.DryRun)
		var reasons struct {
			Proposal struct {
				Policy struct {
					Reasons []string `json:"reasons"`
				} `json:"policy"`
			} `json:"proposal"`
		}
		r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID, c.token, "")
		require.NoError(t, json.Unmarshal(r.Body, &reasons))
		require.Contains(t, reasons.Proposal.Policy.Reasons,
			"reclassified at agreement: the agreed change is medium impact (classified low before) → approval required, 1 approval(s)")
		require.Contains(t, reasons.Proposal.Policy.Reasons, fmt.Sprintf(`rule "scale-change": changes replicas by %d → medium`, 1-replicas))
		r = c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "missing: approvals (")

		// The audit trail follows the proposal through the outbox, moments after the commit.
		require.Eventually(t, func() bool {
			audit := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID, c.token, "")
			require.Equal(t, http.StatusOK, audit.Status, string(audit.Body))
			return strings.Contains(string(audit.Body), `"proposal.reclassified"`)
		}, 10*time.Second, 10*time.Millisecond, "the reclassification is in the audit trail")

		now := c.submit(t, fmt.Sprintf(`{"action":"scale","target":%q,"regions":["eu-west"],"parameters":{"replicas":%d}}`, target, replicas-1))
		require.Equal(t, p.PreStateSHA256, now.PreStateSHA256, "nothing was enacted")
	})
}
