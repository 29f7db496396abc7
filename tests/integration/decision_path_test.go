package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// proposal is the part of a proposal the scenarios read.
type proposal struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Impact         string `json:"impact"`
	DryRun         bool   `json:"dry_run"`
	PreStateSHA256 string `json:"pre_state_sha256"`
	PostState      string `json:"post_state_sha256"`
	Reason         string `json:"reason"`
	Votes          struct {
		NegotiationID string `json:"negotiation_id"`
		Accept        int    `json:"accept"`
		Outcome       string `json:"outcome"`
	} `json:"votes"`
	Score struct {
		Confidence  float64 `json:"confidence"`
		Explanation string  `json:"explanation"`
	} `json:"score"`
	Policy struct {
		ApprovalRequired bool   `json:"approval_required"`
		Quorum           string `json:"quorum"`
	} `json:"policy"`
	DryRunResult struct {
		Passed bool `json:"passed"`
	} `json:"dry_run_result"`
	ConsensusBundle json.RawMessage `json:"consensus_bundle"`
}

type client struct {
	f     *fabrictest.Fabric
	token string
}

func (c client) submit(t *testing.T, manifest string) proposal {
	t.Helper()
	r := c.f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", c.token, `{"tenant_id":"t1","manifest":`+manifest+`}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct{ Proposal proposal }
	require.NoError(t, json.Unmarshal(r.Body, &out))
	return out.Proposal
}

func (c client) get(t *testing.T, id string) proposal {
	t.Helper()
	r := c.f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+id, c.token, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct{ Proposal proposal }
	require.NoError(t, json.Unmarshal(r.Body, &out))
	return out.Proposal
}

// await polls GET /proposals/{id} (which advances the proposal) until its status is want.
func (c client) await(t *testing.T, id, want string) proposal {
	t.Helper()
	var p proposal
	require.Eventually(t, func() bool {
		p = c.get(t, id)
		return p.Status == want
	}, 20*time.Second, 25*time.Millisecond, "proposal %s never reached %s (last %s: %s)", id, want, p.Status, p.Reason)
	return p
}

func (c client) post(t *testing.T, path, body string) fabrictest.Response {
	t.Helper()
	return c.f.Do(t, http.MethodPost, fabric.Coordinator, path, c.token, body)
}

// TestDecisionPath is the spec's end-to-end scenario on every topology and store:
// submit -> negotiate across regions -> score -> a low-impact proposal is enacted ->
// rollback restores the state exactly; a high-impact proposal stays in dry run and
// cannot be enacted without an approver.
func TestDecisionPath(t *testing.T) {
	each(t, func(t *testing.T, f *fabrictest.Fabric) {
		c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}

		// Low impact: one region, one more replica.
		p := c.submit(t, `{"action":"scale","target":"serviceX","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1}}`)
		require.False(t, p.DryRun)
		p = c.await(t, p.ID, "PROPOSAL_STATUS_SCORED")
		require.Equal(t, "AGREED", p.Votes.Outcome)
		require.Equal(t, 1, p.Votes.Accept)
		require.Greater(t, p.Score.Confidence, 0.0)
		require.Less(t, p.Score.Confidence, 1.0)
		require.NotEmpty(t, p.Score.Explanation)

		r := c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var enacted struct {
			Proposal  proposal
			Pre, Post struct {
				SHA256 string `json:"sha256"`
			}
		}
		require.NoError(t, json.Unmarshal(r.Body, &enacted))
		require.Equal(t, "PROPOSAL_STATUS_ENACTED", enacted.Proposal.Status)
		require.Equal(t, p.PreStateSHA256, enacted.Pre.SHA256)
		require.NotEqual(t, enacted.Pre.SHA256, enacted.Post.SHA256, "the change changed the world")
		require.Equal(t, enacted.Post.SHA256, enacted.Proposal.PostState)

		again := c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusConflict, again.Status, "enacting twice is an illegal transition")

		r = c.post(t, "/proposals/"+p.ID+"/rollback", `{}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var rolled struct {
			Proposal proposal
			Restored struct {
				SHA256 string `json:"sha256"`
			}
		}
		require.NoError(t, json.Unmarshal(r.Body, &rolled))
		require.Equal(t, "PROPOSAL_STATUS_ROLLED_BACK", rolled.Proposal.Status)
		require.Equal(t, p.PreStateSHA256, rolled.Restored.SHA256, "rollback restores the pre-state byte for byte")

		// Every step is in the audit log, in order (issue #4 adds proofs and checkpoints).
		r = f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID, c.token, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var trail struct {
			Entries []struct {
				Event   string `json:"event"`
				Actor   string `json:"actor"`
				TraceID string `json:"trace_id"`
			} `json:"entries"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &trail))
		var events []string
		for _, e := range trail.Entries {
			events = append(events, e.Event)
			// The coordinator records events with its service identity, on behalf of
			// the caller whose request caused them: the caller is the actor.
			require.Equal(t, "test-user", e.Actor, "actor of %s", e.Event)
			require.Len(t, e.TraceID, 32, "trace id of %s", e.Event)
		}
		require.Equal(t, []string{
			"proposal.submitted", "snapshot.recorded", "proposal.negotiating", "negotiation.vote", "proposal.agreed", "proposal.scored",
			"proposal.dry_run_passed", "proposal.enacted", "snapshot.recorded", "proposal.rolled_back",
		}, events)

		// The auditor can plan the rollback from the recorded snapshot hashes.
		plan := f.Do(t, http.MethodPost, fabric.Auditor, "/audit/"+p.ID+"/rollback-plan", c.token, `{}`)
		require.Equal(t, http.StatusOK, plan.Status, string(plan.Body))
		require.Contains(t, string(plan.Body), p.PreStateSHA256)

		// A new proposal on the same target sees the restored state.
		same := c.submit(t, `{"action":"scale","target":"serviceX","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1}}`)
		require.Equal(t, p.PreStateSHA256, same.PreStateSHA256)

		// High impact: dry run by default, waits for approval, cannot be enacted.
		h := c.submit(t, `{"action":"scale","target":"serviceY","regions":["eu-west"],"impact":"high","parameters":{"replicas":8}}`)
		require.True(t, h.DryRun, "P3: high impact defaults to dry run")
		h = c.await(t, h.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		require.True(t, h.Policy.ApprovalRequired)
		r = c.post(t, "/proposals/"+h.ID+"/enact", `{}`)
		require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "approver")
		require.Contains(t, string(r.Body), "dry run")

		r = c.post(t, "/proposals/"+h.ID+"/enact", `{"dry_run":true}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		dry := c.get(t, h.ID)
		require.True(t, dry.DryRunResult.Passed)
		require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", dry.Status, "a dry run does not approve")
		audit := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+h.ID, c.token, "")
		require.Equal(t, http.StatusOK, audit.Status)
		require.Contains(t, string(audit.Body), `"proposal.dry_run_passed"`, "the dry run is audited as a dry run, not as another approval request")
		r = c.post(t, "/proposals/"+h.ID+"/enact", `{}`)
		require.Equal(t, http.StatusConflict, r.Status)
		require.Contains(t, string(r.Body), "missing: approvals (")
		require.NotContains(t, string(r.Body), "passed dry run", "only the approver is missing now")

		// World unchanged by the refused and dry-run calls.
		check := c.submit(t, `{"action":"scale","target":"serviceY","regions":["eu-west"],"impact":"high","parameters":{"replicas":8}}`)
		require.Equal(t, h.PreStateSHA256, check.PreStateSHA256)
	})
}

// TestNegotiationExpires: regions that never answer end the negotiation EXPIRED at the
// deadline, with a reason, and the proposal cannot be enacted.
func TestNegotiationExpires(t *testing.T) {
	regions := filepath.Join(t.TempDir(), "regions.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(`
quorum_rule: majority
regions:
  - {name: eu-west, silent: true}
  - {name: us-east, silent: true}
  - {name: ap-south}
`), 0o600))
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite, Configure: func(c *config.Config) {
		c.RegionsFile = regions
		c.DecisionTimeoutMS = 400
	}})
	c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
	p := c.submit(t, `{"action":"scale","target":"serviceZ","regions":["eu-west","us-east","ap-south"],"impact":"low","parameters":{"replicas":3}}`)
	p = c.await(t, p.ID, "PROPOSAL_STATUS_EXPIRED")
	require.NotEmpty(t, p.Reason)
	r := c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
	require.Equal(t, http.StatusConflict, r.Status)
	require.Contains(t, string(r.Body), "EXPIRED")
}

// TestNegotiatorStatusOverREST: the spec's negotiator endpoints for a submitted proposal.
func TestNegotiatorStatusOverREST(t *testing.T) {
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite})
	c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
	p := c.submit(t, `{"action":"scale","target":"serviceX","regions":["eu-west","eu-central","us-east","us-west","ap-south"],"parameters":{"replicas":6}}`)
	require.NotEmpty(t, p.Votes.NegotiationID)
	var st struct {
		Negotiation struct {
			State         string `json:"state"`
			VotesExpected int    `json:"votes_expected"`
		} `json:"negotiation"`
	}
	// The id is recorded with the submission; the engine starts the negotiation right
	// after, so for a moment the negotiator does not know it yet.
	require.Eventually(t, func() bool {
		r := f.Do(t, http.MethodGet, fabric.Negotiator, fmt.Sprintf("/negotiate/%s/status", p.Votes.NegotiationID), c.token, "")
		if r.Status == http.StatusNotFound {
			return false
		}
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.NoError(t, json.Unmarshal(r.Body, &st))
		return st.Negotiation.State != "NEGOTIATION_STATE_RUNNING"
	}, 20*time.Second, 25*time.Millisecond)
	require.Equal(t, 5, st.Negotiation.VotesExpected)

	// The scorer scores what the request carries (it reads no proposal records).
	score := f.Do(t, http.MethodPost, fabric.Scorer, "/score", c.token, `{"proposal_id":"`+p.ID+`","tenant_id":"t1",`+
		`"manifest":{"action":"scale","target":"serviceX","parameters":{"replicas":6}},"history":{}}`)
	require.Equal(t, http.StatusOK, score.Status, string(score.Body))
	var s map[string]any
	require.NoError(t, json.Unmarshal(score.Body, &s))
	for _, k := range []string{"confidence", "risk", "cost_estimate", "explanation"} {
		require.Contains(t, s, k)
	}
}

// TestGetProposalLongPoll: GET /proposals/{id}?wait_ms= answers once the negotiation has
// ended (regions that take 150 ms to answer), in one call instead of a polling loop; an
// out-of-range wait is 400.
func TestGetProposalLongPoll(t *testing.T) {
	regions := filepath.Join(t.TempDir(), "regions.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(`
quorum_rule: majority
regions:
  - {name: eu-west, latency: 150ms}
  - {name: us-east, latency: 150ms}
  - {name: ap-south, latency: 150ms}
`), 0o600))
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite, Configure: func(c *config.Config) {
		c.RegionsFile = regions
	}})
	c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
	p := c.submit(t, `{"action":"scale","target":"serviceX","regions":["eu-west","us-east","ap-south"],"impact":"low","parameters":{"replicas":3}}`)
	require.Equal(t, "PROPOSAL_STATUS_NEGOTIATING", p.Status, "the regions take 150 ms: still negotiating after submit")

	r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID+"?wait_ms=20000", c.token, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct{ Proposal proposal }
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.Equal(t, "AGREED", out.Proposal.Votes.Outcome, "one long poll sees the outcome")
	require.NotEqual(t, "PROPOSAL_STATUS_NEGOTIATING", out.Proposal.Status)
	require.NotZero(t, out.Proposal.Score.Confidence, "and the proposal is already scored")

	r = f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID+"?wait_ms=30001", c.token, "")
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
}

// TestPolicyDecisionTimeout: the tenant policy's decision_timeout_ms (P6) is the
// negotiation's deadline, not the process default, and it is recorded with the decision.
func TestPolicyDecisionTimeout(t *testing.T) {
	dir := t.TempDir()
	regions, pol := filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(regions, []byte("quorum_rule: majority\nregions:\n  - {name: eu-west, silent: true}\n  - {name: us-east, silent: true}\n"), 0o600))
	require.NoError(t, os.WriteFile(pol, []byte("version: 1\ndefaults:\n  quorum: majority\n  decision_timeout_ms: 300\n"), 0o600))
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite, Configure: func(c *config.Config) {
		c.RegionsFile, c.PolicyFile = regions, pol
		c.DecisionTimeoutMS = 60000 // the process default, which the policy overrides
	}})
	c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
	p := c.submit(t, `{"action":"scale","target":"serviceZ","regions":["eu-west","us-east"],"impact":"low","parameters":{"replicas":3}}`)
	r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID+"?wait_ms=10000", c.token, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct {
		Proposal struct {
			Status string `json:"status"`
			Policy struct {
				DecisionTimeoutMS string `json:"decision_timeout_ms"`
				PolicyDigest      string `json:"policy_digest"`
			} `json:"policy"`
		} `json:"proposal"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.Equal(t, "PROPOSAL_STATUS_EXPIRED", out.Proposal.Status, "expired at the policy's 300 ms, not the default 60 s")
	require.Equal(t, "300", out.Proposal.Policy.DecisionTimeoutMS)
	require.Contains(t, out.Proposal.Policy.PolicyDigest, "sha256:")
}
