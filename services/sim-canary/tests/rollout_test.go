package tests

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// The simulated metrics' faults these tests use (set in TestMain, read at start).
const faults = "t1/degraded-svc/eu-west=3,t1/silent-svc/eu-west=nodata"

type stage struct {
	Number          int      `json:"number"`
	Regions         []string `json:"regions"`
	BaselineRegions []string `json:"baseline_regions"`
	State           string   `json:"state"`
	Verdict         string   `json:"verdict"`
	Score           float64  `json:"score"`
	Reason          string   `json:"reason"`
	Metrics         []struct {
		Name           string  `json:"name"`
		Classification string  `json:"classification"`
		PValue         float64 `json:"p_value"`
		Tolerance      float64 `json:"tolerance"`
		BaselineMean   float64 `json:"baseline_mean"`
		CanaryMean     float64 `json:"canary_mean"`
	} `json:"metrics"`
}

type rollout struct {
	ID               string  `json:"id"`
	State            string  `json:"state"`
	Reason           string  `json:"reason"`
	Stages           []stage `json:"stages"`
	PreStateSha256   string  `json:"pre_state_sha256"`
	FinalStateSha256 string  `json:"final_state_sha256"`
}

func startRollout(t *testing.T, f *fabrictest.Fabric, token, proposalID string) rollout {
	t.Helper()
	r := f.Do(t, http.MethodPost, fabric.Canary, "/canary/run", token, `{"proposal_id":"`+proposalID+`"}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var body struct{ Run rollout }
	require.NoError(t, json.Unmarshal(r.Body, &body))
	require.Equal(t, "RUNNING", body.Run.State)
	require.Equal(t, "ENACTED", body.Run.Stages[0].State, "the first wave is made before the answer")
	return body.Run
}

func awaitRollout(t *testing.T, f *fabrictest.Fabric, token, id string) rollout {
	t.Helper()
	var out rollout
	require.Eventually(t, func() bool {
		r := f.Do(t, http.MethodGet, fabric.Canary, "/canary/"+id+"/result", token, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var body struct{ Run rollout }
		require.NoError(t, json.Unmarshal(r.Body, &body))
		out = body.Run
		return out.State != "RUNNING"
	}, 30*time.Second, 50*time.Millisecond)
	return out
}

// currentState is the target's state hash now, from the coordinator.
func currentState(t *testing.T, f *fabrictest.Fabric, token, proposalID string) string {
	t.Helper()
	r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+proposalID+"/change", token, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var body struct {
		Current string `json:"current_state_sha256"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &body))
	return body.Current
}

// auditEvents are the proposal's audit trail's events.
func auditEvents(t *testing.T, f *fabrictest.Fabric, proposalID string, want ...string) []string {
	t.Helper()
	var events []string
	require.Eventually(t, func() bool {
		r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+proposalID, f.Token(t, "t1", auth.RoleAuditor), "")
		var trail struct {
			Entries []struct {
				Event string `json:"event"`
			} `json:"entries"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &trail) != nil {
			return false
		}
		events = events[:0]
		for _, e := range trail.Entries {
			events = append(events, e.Event)
		}
		for _, w := range want {
			found := false
			for _, e := range events {
				found = found || e == w
			}
			if !found {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "want %v", want)
	return events
}

// A clearly worse canary (p99 latency and error rate three times the baseline's in its
// first region) fails its judgement and is rolled back automatically: the world hashes
// to the pre-state again, every wave and verdict is audited, the proposal is not
// enacted.
func TestWorseCanaryIsRolledBack(t *testing.T) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Store: st, Configure: fabrictest.InstantLowImpact(t)})
			tok := f.Token(t, "t1", auth.RoleProposer)
			p := submit(t, f, tok, "degraded-svc", "low")
			p = await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")

			run := startRollout(t, f, tok, p.ID)
			got := awaitRollout(t, f, tok, run.ID)
			require.Equal(t, "ROLLED_BACK", got.State, got.Reason)
			require.Equal(t, "FAIL", got.Stages[0].Verdict)
			require.Equal(t, "ROLLED_BACK", got.Stages[0].State)
			require.Equal(t, "PENDING", got.Stages[1].State, "the second wave never started")
			require.Contains(t, got.Reason, "wave 1 failed its judgement")
			require.Equal(t, p.PreStateSha256, got.PreStateSha256)
			require.Equal(t, p.PreStateSha256, got.FinalStateSha256)
			require.Equal(t, p.PreStateSha256, currentState(t, f, tok, p.ID), "the world is back in the pre-state")
			var latency bool
			for _, m := range got.Stages[0].Metrics {
				if m.Name == "latency_p99" {
					latency = true
					require.Equal(t, "High", m.Classification)
					require.Less(t, m.PValue, 0.02)
					require.InDelta(t, 3, m.CanaryMean/m.BaselineMean, 0.3)
				}
			}
			require.True(t, latency, "the scorecard shows each metric")
			await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")
			auditEvents(t, f, p.ID, "canary.stage_enacted", "canary.rolled_back")
			metrics := string(f.Do(t, http.MethodGet, fabric.Canary, "/metrics", "", "").Body)
			require.Contains(t, metrics, `fabric_canary_verdicts_total{verdict="FAIL"} 1`)
			require.Contains(t, metrics, `fabric_canary_runs_total{kind="canary",state="ROLLED_BACK"} 1`)
		})
	}
}

// Equal metrics pass every wave: the run is PROMOTED and the proposal ENACTED at the
// state the run ended in.
func TestEqualCanaryIsPromoted(t *testing.T) {
	t.Parallel()
	f := fabrictest.Start(t, fabrictest.Options{Store: fabrictest.SQLite, Configure: fabrictest.InstantLowImpact(t)})
	tok := f.Token(t, "t1", auth.RoleProposer)
	p := submit(t, f, tok, "healthy-svc", "low")
	p = await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")
	run := startRollout(t, f, tok, p.ID)
	got := awaitRollout(t, f, tok, run.ID)
	require.Equal(t, "PROMOTED", got.State, got.Reason)
	for _, s := range got.Stages {
		require.Equal(t, "PROMOTED", s.State)
		require.Equal(t, "PASS", s.Verdict, s.Reason)
	}
	enacted := await(t, f, tok, p.ID, "PROPOSAL_STATUS_ENACTED")
	require.Equal(t, enacted.PostStateSha256, got.FinalStateSha256)
	require.Equal(t, enacted.PostStateSha256, currentState(t, f, tok, p.ID))
	auditEvents(t, f, p.ID, "canary.stage_enacted", "canary.wave_promoted", "canary.promoted", "proposal.enacted")

	// A second rollout of an enacted proposal is refused, and nothing is stored.
	r := f.Do(t, http.MethodPost, fabric.Canary, "/canary/run", tok, `{"proposal_id":"`+p.ID+`"}`)
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
}

// Missing data holds the run for a human, never promotes it; the emergency stop then
// rolls the enacted wave back.
func TestMissingDataHoldsAndStopRollsBack(t *testing.T) {
	t.Parallel()
	f := fabrictest.Start(t, fabrictest.Options{Store: fabrictest.Postgres, Configure: fabrictest.InstantLowImpact(t)})
	tok := f.Token(t, "t1", auth.RoleProposer)
	p := submit(t, f, tok, "silent-svc", "low")
	p = await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")
	run := startRollout(t, f, tok, p.ID)
	got := awaitRollout(t, f, tok, run.ID)
	require.Equal(t, "HELD", got.State)
	require.Contains(t, got.Reason, "missing data")
	require.Contains(t, got.Reason, "no canary data in eu-west")
	require.Equal(t, "HELD", got.Stages[0].State)
	require.NotEqual(t, p.PreStateSha256, currentState(t, f, tok, p.ID), "held: the first wave stays")

	// Another tenant cannot stop it, an auditor may not; the proposer can.
	require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodPost, fabric.Canary, "/canary/"+run.ID+"/stop", f.Token(t, "t2", auth.RoleProposer), `{}`).Status)
	require.Equal(t, http.StatusForbidden, f.Do(t, http.MethodPost, fabric.Canary, "/canary/"+run.ID+"/stop", f.Token(t, "t1", auth.RoleAuditor), `{}`).Status)
	r := f.Do(t, http.MethodPost, fabric.Canary, "/canary/"+run.ID+"/stop", tok, `{"reason":"pager went off"}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var body struct{ Run rollout }
	require.NoError(t, json.Unmarshal(r.Body, &body))
	require.Equal(t, "STOPPED", body.Run.State)
	require.Contains(t, body.Run.Reason, "pager went off")
	require.Equal(t, p.PreStateSha256, body.Run.FinalStateSha256)
	require.Equal(t, p.PreStateSha256, currentState(t, f, tok, p.ID))
	auditEvents(t, f, p.ID, "canary.held", "canary.stopped", "canary.rolled_back")

	// Stopping again changes nothing.
	again := f.Do(t, http.MethodPost, fabric.Canary, "/canary/"+run.ID+"/stop", tok, `{}`)
	require.Equal(t, http.StatusOK, again.Status)
	require.Contains(t, string(again.Body), `"STOPPED"`)
	require.Equal(t, http.StatusBadRequest, f.Do(t, http.MethodPost, fabric.Canary, "/canary/not-a-run/stop", tok, `{}`).Status)
}

// The emergency stop halts a RUNNING rollout (its first wave settling for an hour)
// through the gateway: the world is back in the pre-state, the second wave never
// happens, the proposal is not enacted, the stop is audited.
func TestStopHaltsARunningRollout(t *testing.T) {
	t.Parallel()
	low := fabrictest.InstantLowImpact(t)
	f := fabrictest.Start(t, fabrictest.Options{Store: fabrictest.SQLite, Configure: func(c *config.Config) {
		low(c)
		c.Canary.Settle = config.Duration(time.Hour)
	}})
	tok := f.Token(t, "t1", auth.RoleProposer)
	p := submit(t, f, tok, "settling-svc", "low")
	p = await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")
	run := startRollout(t, f, tok, p.ID)
	require.NotEqual(t, p.PreStateSha256, currentState(t, f, tok, p.ID), "the first wave is made")
	time.Sleep(200 * time.Millisecond)
	res := f.Do(t, http.MethodGet, fabric.Canary, "/canary/"+run.ID+"/result", tok, "")
	require.Contains(t, string(res.Body), `"state":"RUNNING"`, "still settling")

	r := f.Do(t, http.MethodPost, fabric.Canary, "/canary/"+run.ID+"/stop", tok, `{"reason":"rollback drill"}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var body struct{ Run rollout }
	require.NoError(t, json.Unmarshal(r.Body, &body))
	require.Equal(t, "STOPPED", body.Run.State)
	require.Equal(t, "ROLLED_BACK", body.Run.Stages[0].State)
	require.Equal(t, "PENDING", body.Run.Stages[1].State)
	require.Equal(t, p.PreStateSha256, body.Run.FinalStateSha256)
	require.Equal(t, p.PreStateSha256, currentState(t, f, tok, p.ID))
	await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")
	auditEvents(t, f, p.ID, "canary.stage_enacted", "canary.rolled_back", "canary.stopped")
}

// A rollout left RUNNING by a stopped fabric resumes when it starts again: its first
// wave (made before the stop) is judged, the second made, and the run PROMOTED.
func TestRolloutResumesAfterARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	low := fabrictest.InstantLowImpact(t)
	configure := func(settle time.Duration) func(*config.Config) {
		return func(c *config.Config) {
			low(c)
			c.DataDir = dir
			c.Canary.Settle = config.Duration(settle)
		}
	}
	f := fabrictest.Start(t, fabrictest.Options{Store: fabrictest.SQLite, Configure: configure(time.Hour)})
	tok := f.Token(t, "t1", auth.RoleProposer)
	p := submit(t, f, tok, "resumed-svc", "low")
	p = await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")
	run := startRollout(t, f, tok, p.ID)
	f.Stop(t)

	g := fabrictest.Start(t, fabrictest.Options{Store: fabrictest.SQLite, Configure: configure(0)})
	tok = g.Token(t, "t1", auth.RoleProposer)
	got := awaitRollout(t, g, tok, run.ID)
	require.Equal(t, "PROMOTED", got.State, got.Reason)
	require.Equal(t, "PASS", got.Stages[0].Verdict)
	require.Equal(t, "PASS", got.Stages[1].Verdict)
	enacted := await(t, g, tok, p.ID, "PROPOSAL_STATUS_ENACTED")
	require.Equal(t, enacted.PostStateSha256, got.FinalStateSha256)
}
