// Package tests runs the sim-canary inside a whole fabric, through the real REST
// gateway, on both stores: a whole-chain dry run returns a scorecard and changes
// nothing anywhere but the sim-canary's own table.
package tests

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // read the fabric's SQLite file

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/metricsource"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) {
	if err := os.Setenv(metricsource.FaultsEnv, faults); err != nil {
		panic(err)
	}
	pgtest.Main(m)
}

type step struct {
	Name, Result, Detail string
	Inputs               map[string]string
	DurationMs           string `json:"duration_ms"`
}

type run struct {
	ID         string `json:"id"`
	ProposalID string `json:"proposal_id"`
	TenantID   string `json:"tenant_id"`
	State      string `json:"state"`
	DryRun     bool   `json:"dry_run"`
	Steps      []step `json:"steps"`
	Scorecard  struct {
		Recommendation       string   `json:"recommendation"`
		RecommendationDetail string   `json:"recommendation_detail"`
		PreStateSha256       string   `json:"pre_state_sha256"`
		PredictedPost        string   `json:"predicted_post_state_sha256"`
		ApprovalsNeeded      []string `json:"approvals_needed"`
		Checks               []struct{ ID, Name, Result, Detail string }
		AuditEntries         []struct{ Service, Event, Key string } `json:"audit_entries"`
		Diff                 []struct{ Path, Before, After string }
	} `json:"scorecard"`
}

type proposal struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	PreStateSha256  string `json:"pre_state_sha256"`
	PostStateSha256 string `json:"post_state_sha256"`
}

func submit(t *testing.T, f *fabrictest.Fabric, token, target, impact string) proposal {
	t.Helper()
	r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", token, fmt.Sprintf(
		`{"tenant_id":"t1","manifest":{"action":"scale","target":%q,"regions":["eu-west","us-east"],"impact":%q,"parameters":{"replicas_delta":2}}}`,
		target, impact))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var body struct{ Proposal proposal }
	require.NoError(t, json.Unmarshal(r.Body, &body))
	return body.Proposal
}

func await(t *testing.T, f *fabrictest.Fabric, token, id, status string) proposal {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+id+"?wait_ms=1000", token, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var body struct{ Proposal proposal }
		require.NoError(t, json.Unmarshal(r.Body, &body))
		if body.Proposal.Status == status {
			return body.Proposal
		}
		require.True(t, time.Now().Before(deadline), "proposal %s is %s, want %s", id, body.Proposal.Status, status)
	}
}

// dump renders every row of every table but the sim-canary's own, straight from the
// database, sorted.
func dump(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store) string {
	t.Helper()
	var tables []string
	for _, o := range store.Owners {
		for _, tb := range o.Tables {
			if tb != "canary_runs" {
				tables = append(tables, tb)
			}
		}
	}
	sort.Strings(tables)
	var lines []string
	if st == fabrictest.Postgres {
		conn, err := pgx.Connect(t.Context(), f.Cfg.Integrations.PostgresDSN.Reveal())
		require.NoError(t, err)
		defer conn.Close(context.Background())
		for _, tb := range tables {
			rs, err := conn.Query(t.Context(), "SELECT * FROM "+tb)
			require.NoError(t, err)
			for rs.Next() {
				vals, err := rs.Values()
				require.NoError(t, err)
				lines = append(lines, tb+": "+fmt.Sprint(vals...))
			}
			require.NoError(t, rs.Err())
		}
	} else {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(f.Cfg.DataDir, store.SQLiteFileName)+"?_pragma=query_only(1)")
		require.NoError(t, err)
		defer db.Close()
		for _, tb := range tables {
			rs, err := db.QueryContext(t.Context(), "SELECT * FROM "+tb)
			require.NoError(t, err)
			cols, err := rs.Columns()
			require.NoError(t, err)
			for rs.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				require.NoError(t, rs.Scan(ptrs...))
				lines = append(lines, tb+": "+fmt.Sprint(vals...))
			}
			require.NoError(t, rs.Err())
			require.NoError(t, rs.Close())
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// pendingBackground is the SQL that counts the background work still to do: audit
// events not yet relayed, and tenants whose audit log has entries no signed
// checkpoint covers yet (checkpoints are batched, up to 10 s apart).
const pendingBackground = `SELECT
	(SELECT count(*) FROM audit_outbox) +
	(SELECT count(*) FROM (SELECT tenant_id, count(*) AS n FROM audit_entries GROUP BY tenant_id) e
	  WHERE NOT EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.tenant_id = e.tenant_id AND c.size = e.n))`

// backgroundPending runs pendingBackground on the fabric's store.
func backgroundPending(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store) int64 {
	t.Helper()
	var n int64
	if st == fabrictest.Postgres {
		conn, err := pgx.Connect(t.Context(), f.Cfg.Integrations.PostgresDSN.Reveal())
		require.NoError(t, err)
		defer conn.Close(context.Background())
		require.NoError(t, conn.QueryRow(t.Context(), pendingBackground).Scan(&n))
		return n
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(f.Cfg.DataDir, store.SQLiteFileName)+"?_pragma=query_only(1)")
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.QueryRowContext(t.Context(), pendingBackground).Scan(&n))
	return n
}

// quiet waits until the fabric's background work has settled — every audit event
// relayed, every audit log covered by a signed checkpoint, and then the same rows for
// a second (approval requests, notifications) — and returns the dump. A machine under
// load can hold the relay back for longer than any fixed pause, so the relay and the
// checkpoints are waited for by what they leave behind, not by time.
func quiet(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store) string {
	t.Helper()
	prev, same := dump(t, f, st), 0
	for range 480 {
		time.Sleep(250 * time.Millisecond)
		cur := dump(t, f, st)
		if cur != prev || backgroundPending(t, f, st) != 0 {
			prev, same = cur, 0
			continue
		}
		if same++; same == 4 {
			return cur
		}
	}
	t.Fatal("the fabric never settled")
	return ""
}

// requireSame fails with the rows that differ between two dumps.
func requireSame(t *testing.T, before, after string) {
	t.Helper()
	if before == after {
		return
	}
	was, now := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		was[l] = true
	}
	for _, l := range strings.Split(after, "\n") {
		now[l] = true
	}
	var diff []string
	for l := range was {
		if !now[l] {
			diff = append(diff, "- "+l)
		}
	}
	for l := range now {
		if !was[l] {
			diff = append(diff, "+ "+l)
		}
	}
	sort.Strings(diff)
	t.Fatalf("a dry run changes no table but canary_runs; rows that differ:\n%s", strings.Join(diff, "\n"))
}

func dryRun(t *testing.T, f *fabrictest.Fabric, token, id string) run {
	t.Helper()
	r := f.Do(t, http.MethodPost, fabric.Canary, "/canary/run", token, `{"proposal_id":"`+id+`","dry_run":true}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var body struct{ Run run }
	require.NoError(t, json.Unmarshal(r.Body, &body))
	return body.Run
}

func names(r run) (steps, checks, events []string) {
	for _, s := range r.Steps {
		steps = append(steps, s.Name+"="+s.Result)
	}
	for _, c := range r.Scorecard.Checks {
		checks = append(checks, c.ID+"="+c.Result)
	}
	for _, e := range r.Scorecard.AuditEntries {
		events = append(events, e.Event)
	}
	return steps, checks, events
}

// A dry run of a scored low-impact proposal rehearses the whole chain, recommends
// proceeding, and leaves every other service's tables (the world, proposals,
// negotiations, audit log and outbox, approvals and the notification outbox) byte for
// byte as they were. The enactment that follows lands exactly on the predicted state.
func TestDryRunChangesNothing(t *testing.T) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			f := fabrictest.Start(t, fabrictest.Options{Store: st, Configure: fabrictest.InstantLowImpact(t)})
			tok := f.Token(t, "t1", auth.RoleProposer)
			p := submit(t, f, tok, "serviceX", "low")
			p = await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")

			before := quiet(t, f, st)
			r := dryRun(t, f, tok, p.ID)
			requireSame(t, before, dump(t, f, st))

			require.True(t, r.DryRun)
			require.Equal(t, "PASSED", r.State)
			require.Equal(t, "t1", r.TenantID)
			steps, checks, events := names(r)
			require.Equal(t, []string{"policy=PASSED", "negotiate=PASSED", "score=PASSED", "approval=PASSED", "enact=PASSED", "audit=PASSED"}, steps)
			require.Equal(t, []string{"P1=NOT_APPLICABLE", "P2=PASSED", "P3=PASSED", "P4=PASSED", "P5=PASSED", "P6=PASSED", "P7=PASSED"}, checks)
			require.Equal(t, []string{"proposal.dry_run_passed", "proposal.enacted", "post"}, events)
			require.Equal(t, "PROCEED", r.Scorecard.Recommendation, r.Scorecard.RecommendationDetail)
			require.Equal(t, p.PreStateSha256, r.Scorecard.PreStateSha256)
			require.NotEqual(t, r.Scorecard.PreStateSha256, r.Scorecard.PredictedPost)
			require.NotEmpty(t, r.Scorecard.Diff)
			require.Equal(t, "AGREED", r.Steps[1].Inputs["outcome"])
			require.NotEmpty(t, r.Steps[2].Inputs["confidence"])

			// The stored scorecard, for the caller's tenant only; reads change nothing.
			res := f.Do(t, http.MethodGet, fabric.Canary, "/canary/"+r.ID+"/result", f.Token(t, "t1", auth.RoleAuditor), "")
			require.Equal(t, http.StatusOK, res.Status, string(res.Body))
			var got struct{ Run run }
			require.NoError(t, json.Unmarshal(res.Body, &got))
			require.Equal(t, r, got.Run)
			require.Equal(t, http.StatusNotFound, f.Do(t, http.MethodGet, fabric.Canary, "/canary/"+r.ID+"/result", f.Token(t, "t2", auth.RoleAuditor), "").Status)

			// The real enactment afterwards lands on the predicted state.
			en := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals/"+p.ID+"/enact", tok, `{}`)
			require.Equal(t, http.StatusOK, en.Status, string(en.Body))
			var enacted struct{ Proposal proposal }
			require.NoError(t, json.Unmarshal(en.Body, &enacted))
			require.Equal(t, r.Scorecard.PredictedPost, enacted.Proposal.PostStateSha256)
			// ... and writes exactly the audit entries the dry run listed (the snapshot
			// digest goes through RecordSnapshot, not the trail).
			want := map[string]string{}
			for _, e := range r.Scorecard.AuditEntries {
				if e.Event != "post" {
					want[e.Key] = e.Event
				}
			}
			require.Eventually(t, func() bool {
				res := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID, f.Token(t, "t1", auth.RoleAuditor), "")
				var trail struct {
					Entries []struct {
						Event          string `json:"event"`
						IdempotencyKey string `json:"idempotency_key"`
					} `json:"entries"`
				}
				if res.Status != http.StatusOK || json.Unmarshal(res.Body, &trail) != nil {
					return false
				}
				found := 0
				for _, e := range trail.Entries {
					if ev, ok := want[e.IdempotencyKey]; ok && ev == e.Event {
						found++
					}
				}
				return found == len(want)
			}, 20*time.Second, 100*time.Millisecond, "the audit trail holds every entry the dry run predicted: %v", want)

			// Enacted, the chain would now be refused.
			again := dryRun(t, f, tok, p.ID)
			require.Equal(t, "FAILED", again.State)
			require.Equal(t, "REFUSED", again.Scorecard.Recommendation)
			require.Contains(t, again.Scorecard.RecommendationDetail, "ENACTED")

			metrics := string(f.Do(t, http.MethodGet, fabric.Canary, "/metrics", "", "").Body)
			require.Contains(t, metrics, `fabric_canary_runs_total{kind="dry_run",state="PASSED"} 1`)
			require.Contains(t, metrics, `fabric_canary_runs_total{kind="dry_run",state="FAILED"} 1`)
			require.Contains(t, metrics, `fabric_canary_steps_total{result="PASSED",step="negotiate"} 2`)
		})
	}
}

// A high-impact proposal waiting for approval: the dry run says who would have to
// approve, notifies nobody (the notification outbox and approval requests do not
// change) and writes no audit entry.
func TestDryRunNeedsApprovalNotifiesNobody(t *testing.T) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			needsApproval(t, st)
		})
	}
}

func needsApproval(t *testing.T, st fabrictest.Store) {
	f := fabrictest.Start(t, fabrictest.Options{Store: st, Configure: fabrictest.InstantLowImpact(t)})
	tok := f.Token(t, "t1", auth.RoleProposer)
	p := submit(t, f, tok, "serviceY", "high")
	await(t, f, tok, p.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")

	before := quiet(t, f, st)
	r := dryRun(t, f, tok, p.ID)
	requireSame(t, before, dump(t, f, st))

	require.Equal(t, "PASSED", r.State)
	require.Equal(t, "NEEDS_APPROVAL", r.Scorecard.Recommendation, r.Scorecard.RecommendationDetail)
	require.Contains(t, r.Scorecard.RecommendationDetail, "needs approval from")
	require.NotEmpty(t, r.Scorecard.ApprovalsNeeded)
	steps, _, events := names(r)
	require.Contains(t, steps, "approval=NEEDS_APPROVAL")
	require.Equal(t, []string{"approval.vote", "proposal.approved", "proposal.dry_run_passed", "proposal.enacted", "post"}, events)

	// A canary rollout does not bypass the approval: refused, nothing changed or stored.
	ro := f.Do(t, http.MethodPost, fabric.Canary, "/canary/run", tok, `{"proposal_id":"`+p.ID+`"}`)
	require.Equal(t, http.StatusConflict, ro.Status, string(ro.Body))
	require.Contains(t, string(ro.Body), "approval")
	requireSame(t, before, dump(t, f, st))
	runs, err := f.Store().CanaryRuns().ListByProposal(t.Context(), "t1", p.ID, 0)
	require.NoError(t, err)
	require.Len(t, runs, 1, "only the dry run")
}

// Bad input gets the right code and changes nothing; another tenant's proposal is as
// unknown as a missing one; canary rollouts are not built (501).
func TestRunErrors(t *testing.T) {
	t.Parallel()
	f := fabrictest.Start(t, fabrictest.Options{Store: fabrictest.SQLite, Configure: fabrictest.InstantLowImpact(t)})
	tok := f.Token(t, "t1", auth.RoleProposer)
	p := submit(t, f, tok, "serviceZ", "low")
	await(t, f, tok, p.ID, "PROPOSAL_STATUS_SCORED")
	r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", tok,
		`{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceW","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1}}}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var sub struct{ Proposal proposal }
	require.NoError(t, json.Unmarshal(r.Body, &sub))
	single := await(t, f, tok, sub.Proposal.ID, "PROPOSAL_STATUS_SCORED")
	before := quiet(t, f, fabrictest.SQLite)
	for _, c := range []struct {
		name, token, body string
		want              int
	}{
		{"no proposal", tok, `{"dry_run":true}`, http.StatusBadRequest},
		{"malformed proposal id", tok, `{"proposal_id":"x y","dry_run":true}`, http.StatusBadRequest},
		{"unknown field", tok, `{"proposal_id":"` + p.ID + `","dry_run":true,"x":1}`, http.StatusBadRequest},
		{"unknown proposal", tok, `{"proposal_id":"` + ulid.Make().String() + `","dry_run":true}`, http.StatusNotFound},
		{"another tenant's proposal", f.Token(t, "t2", auth.RoleProposer), `{"proposal_id":"` + p.ID + `","dry_run":true}`, http.StatusNotFound},
		{"no token", "", `{"proposal_id":"` + p.ID + `","dry_run":true}`, http.StatusUnauthorized},
		{"an auditor may not run", f.Token(t, "t1", auth.RoleAuditor), `{"proposal_id":"` + p.ID + `","dry_run":true}`, http.StatusForbidden},
		{"rollout of a single region", tok, `{"proposal_id":"` + single.ID + `"}`, http.StatusConflict},
	} {
		r := f.Do(t, http.MethodPost, fabric.Canary, "/canary/run", c.token, c.body)
		require.Equal(t, c.want, r.Status, "%s: %s", c.name, r.Body)
	}
	for path, want := range map[string]int{
		"/canary/" + ulid.Make().String() + "/result": http.StatusNotFound,
		"/canary/not-a-run/result":                    http.StatusBadRequest,
	} {
		require.Equal(t, want, f.Do(t, http.MethodGet, fabric.Canary, path, tok, "").Status, path)
	}
	requireSame(t, before, dump(t, f, fabrictest.SQLite))
	s := f.Store()
	runs, err := s.CanaryRuns().ListByProposal(t.Context(), "t1", p.ID, 0)
	require.NoError(t, err)
	require.Empty(t, runs, "refused runs store nothing")
	require.False(t, slices.ContainsFunc(runs, func(r *store.CanaryRun) bool { return r.TenantID != "t1" }))
}
