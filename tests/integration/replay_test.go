package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"

	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/cli"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// stricterPolicy is the built-in policy's rules with one more: a change of two replicas
// or more is high impact (so it needs an approver).
const stricterPolicy = `version: 1
defaults:
  quorum: majority
  approvals_required: 1
  max_monthly_cost_delta: 5000
  currency: USD
  impact_rules:
    - name: two-replicas-is-high
      when: abs_replica_delta >= 2
      impact: high
      reason: "changes replicas by {replica_delta}"
  approval_when: impact == "high"
`

// replayResult is the part of a ReplayResult the test reads.
type replayResult struct {
	ProposalID        string   `json:"proposal_id"`
	RecordedOutcome   string   `json:"recorded_outcome"`
	CandidateOutcome  string   `json:"candidate_outcome"`
	Changed           bool     `json:"changed"`
	CandidateImpact   string   `json:"candidate_impact"`
	ApprovalsRequired int      `json:"approvals_required"`
	QuorumReached     *bool    `json:"quorum_reached"`
	Reasons           []string `json:"reasons"`
	Verified          bool     `json:"verified"`
	VerificationError string   `json:"verification_error"`
}

type replayResponse struct {
	Results   []replayResult `json:"results"`
	Changed   int            `json:"changed"`
	NotFound  []string       `json:"not_found"`
	Truncated bool           `json:"truncated"`
	Table     string         `json:"table"`
	Digest    string         `json:"candidate_policy_digest"`
}

func replayBody(t *testing.T, fields map[string]any) string {
	t.Helper()
	b, err := json.Marshal(fields)
	require.NoError(t, err)
	return string(b)
}

// auditSize is the size of tenant t1's audit log, once every entry the coordinator
// staged has been relayed and is covered by a signed checkpoint.
func auditSize(t *testing.T, f *fabrictest.Fabric, token string) int64 {
	t.Helper()
	r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/checkpoint", token, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var cp struct {
		Checkpoint struct {
			Size string `json:"size"`
		} `json:"checkpoint"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &cp))
	var n int64
	_, err := fmt.Sscan(cp.Checkpoint.Size, &n)
	require.NoError(t, err)
	return n
}

// TestReplayUnderAStricterPolicy runs decisions on the fabric (low impact ones enacted
// or left scored, a high impact one waiting for approval, one in another tenant),
// replays them through the REST gateway under a stricter candidate policy, and checks
// that the replay lists exactly the decisions whose outcome the candidate changes,
// verifies every record, answers a table too, and writes nothing; then the refusals:
// a candidate policy that does not compile, too many ids, another tenant's id.
// It runs all in one process on SQLite, and split in seven processes on Postgres with
// the auditor on its own database (the sim-canary then reads its peers over gRPC).
func TestReplayUnderAStricterPolicy(t *testing.T) {
	for _, opts := range []fabrictest.Options{
		{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite},
		{Topology: fabrictest.Split, Store: fabrictest.Postgres, AuditorOwnStore: true},
	} {
		t.Run(fmt.Sprintf("%s/%s", opts.Topology, opts.Store), func(t *testing.T) {
			t.Parallel()
			replayScenario(t, fabrictest.Start(t, opts), opts.Store)
		})
	}
}

func replayScenario(t *testing.T, f *fabrictest.Fabric, st fabrictest.Store) {
	agent := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
	auditor := f.Token(t, "t1", auth.RoleAuditor)
	from := time.Now().Add(-time.Minute)

	// One replica, enacted: low under both policies.
	small := agent.submit(t, `{"action":"scale","target":"svc-small","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1}}`)
	agent.await(t, small.ID, "PROPOSAL_STATUS_SCORED")
	require.Equal(t, http.StatusOK, agent.post(t, "/proposals/"+small.ID+"/enact", `{}`).Status)
	// Two replicas, enacted: low when decided, high (approval) under the candidate.
	two := agent.submit(t, `{"action":"scale","target":"svc-two","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":2}}`)
	agent.await(t, two.ID, "PROPOSAL_STATUS_SCORED")
	require.Equal(t, http.StatusOK, agent.post(t, "/proposals/"+two.ID+"/enact", `{}`).Status)
	// Four replicas, scored and not enacted (free to be): high under the candidate.
	four := agent.submit(t, `{"action":"scale","target":"svc-four","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":4}}`)
	agent.await(t, four.ID, "PROPOSAL_STATUS_SCORED")
	// Declared high: waits for an approver under both.
	high := agent.submit(t, `{"action":"scale","target":"svc-high","regions":["eu-west"],"impact":"high","parameters":{"replicas_delta":1}}`)
	agent.await(t, high.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
	// Over eu-west's cost ceiling: the region rejects it (no consensus bundle; its
	// signed vote is in the negotiator's certificate).
	rejected := agent.submit(t, `{"action":"scale","target":"svc-rej","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1,"monthly_cost":50000}}`)
	agent.await(t, rejected.ID, "PROPOSAL_STATUS_REJECTED")
	// Another tenant's decision.
	other := client{f: f, token: f.Token(t, "t2", auth.RoleProposer)}
	r := other.f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", other.token,
		`{"tenant_id":"t2","manifest":{"action":"scale","target":"svc-t2","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":5}}}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var t2 struct{ Proposal proposal }
	require.NoError(t, json.Unmarshal(r.Body, &t2))
	other.await(t, t2.Proposal.ID, "PROPOSAL_STATUS_SCORED") // quiet: no move left behind the replay
	ids := []string{small.ID, two.ID, four.ID, high.ID, rejected.ID}

	// Quiet: the approval request of the high one opened (the engine asks the
	// hil-gateway after the move), every audit event relayed, the checkpoint covering
	// them all.
	require.Eventually(t, func() bool {
		_, err := f.Store().Approvals().GetRequest(context.Background(), "t1", high.ID)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the approval request is opened")
	require.Eventually(t, func() bool {
		es, err := f.Store().Outbox().List(context.Background(), 0, time.Time{}, 10)
		require.NoError(t, err)
		return len(es) == 0
	}, 20*time.Second, 50*time.Millisecond, "the audit relay delivers every event")
	sizeBefore := auditSize(t, f, auditor)
	db := rawDB(t, f, st)
	rowsBefore := dumpRows(t, db, st)
	require.Contains(t, rowsBefore, two.ID, "the dump holds the decisions")
	before := stateTables(t, f.Store(), ids)
	notesBefore, err := f.Store().Approvals().ListNotifications(context.Background(), "t1", high.ID)
	require.NoError(t, err)

	var commits atomic.Int64
	var labels sync.Map
	stop, ok := store.Observe(f.Store(), func(ctx context.Context) {
		if !fabrictest.BackgroundCommit(ctx) {
			labels.Store(store.CommitLabel(ctx), true)
			commits.Add(1)
		}
	})
	require.True(t, ok)
	defer stop()

	// By window: every decision of t1, none of t2.
	r = f.Do(t, http.MethodPost, fabric.Canary, "/canary/replay", auditor, replayBody(t, map[string]any{
		"from": from.UTC().Format(time.RFC3339), "to": time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
		"candidate_policy": stricterPolicy,
	}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out replayResponse
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.Len(t, out.Results, 5, "the window holds t1's five decisions and not t2's")
	var changed []string
	byID := map[string]replayResult{}
	for _, res := range out.Results {
		require.True(t, res.Verified, "%s: %s", res.ProposalID, res.VerificationError)
		require.NotNil(t, res.QuorumReached, res.ProposalID)
		require.Equal(t, res.ProposalID != rejected.ID, *res.QuorumReached, "%s: %v", res.ProposalID, res.Reasons)
		byID[res.ProposalID] = res
		if res.Changed {
			changed = append(changed, res.ProposalID)
		}
	}
	want := []string{two.ID, four.ID}
	sort.Strings(want)
	sort.Strings(changed)
	require.Equal(t, want, changed, "exactly the decisions the candidate changes")
	require.Equal(t, 2, out.Changed)
	require.True(t, strings.HasPrefix(out.Digest, "sha256:"))

	require.Equal(t, "ENACTED", byID[small.ID].RecordedOutcome)
	require.Equal(t, "PROCEED", byID[small.ID].CandidateOutcome)
	require.Equal(t, "ENACTED", byID[two.ID].RecordedOutcome)
	require.Equal(t, "PENDING_APPROVAL", byID[two.ID].CandidateOutcome)
	require.Equal(t, "high", byID[two.ID].CandidateImpact)
	require.Equal(t, 1, byID[two.ID].ApprovalsRequired)
	require.Contains(t, strings.Join(byID[two.ID].Reasons, "\n"), `rule "two-replicas-is-high": changes replicas by 2 → high`)
	require.Equal(t, "SCORED", byID[four.ID].RecordedOutcome)
	require.Equal(t, "PENDING_APPROVAL", byID[four.ID].CandidateOutcome)
	require.Equal(t, "PENDING_APPROVAL", byID[high.ID].RecordedOutcome)
	require.Equal(t, "PENDING_APPROVAL", byID[high.ID].CandidateOutcome)
	require.Equal(t, "REJECTED", byID[rejected.ID].RecordedOutcome)
	require.Equal(t, "REJECTED", byID[rejected.ID].CandidateOutcome)
	require.Contains(t, strings.Join(byID[rejected.ID].Reasons, "\n"), "majority quorum not reached")

	t.Logf("replay table:\n%s", out.Table)
	// The table: a header and one aligned line per decision.
	lines := strings.Split(strings.TrimRight(out.Table, "\n"), "\n")
	require.Len(t, lines, 6, out.Table)
	require.True(t, strings.HasPrefix(lines[0], "PROPOSAL"), out.Table)
	col := strings.Index(lines[0], "CHANGED")
	for _, l := range lines[1:] {
		id := l[:strings.IndexByte(l, ' ')]
		wantCol := map[bool]string{true: "YES", false: "no "}[byID[id].Changed]
		require.Equal(t, wantCol, l[col:col+3], "column CHANGED of %s:\n%s", id, out.Table)
	}

	// By ids, with another tenant's id: reported not found, nothing about it leaks.
	r = f.Do(t, http.MethodPost, fabric.Canary, "/canary/replay", auditor, replayBody(t, map[string]any{
		"proposal_ids": []string{two.ID, t2.Proposal.ID}, "candidate_policy": stricterPolicy,
	}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	out = replayResponse{}
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.Len(t, out.Results, 1)
	require.Equal(t, two.ID, out.Results[0].ProposalID)
	require.Equal(t, []string{t2.Proposal.ID}, out.NotFound)
	require.NotContains(t, string(r.Body), "svc-t2")

	// A candidate region set the recorded votes cannot carry: eu-west's accept alone
	// is no majority of eu-west and us-east, whose vote was never cast.
	r = f.Do(t, http.MethodPost, fabric.Canary, "/canary/replay", auditor, replayBody(t, map[string]any{
		"proposal_ids":      []string{small.ID},
		"candidate_regions": []map[string]any{{"region": "eu-west"}, {"region": "us-east"}},
	}))
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	out = replayResponse{}
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.Len(t, out.Results, 1)
	require.Equal(t, "REJECTED", out.Results[0].CandidateOutcome, out.Results[0].Reasons)
	require.True(t, out.Results[0].Changed)
	require.False(t, *out.Results[0].QuorumReached)

	// The command line: the same replay, as a table.
	polFile := filepath.Join(t.TempDir(), "candidate.yaml")
	require.NoError(t, os.WriteFile(polFile, []byte(stricterPolicy), 0o600))
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"canary", "replay", "-url", f.URL(fabric.Canary), "-token", auditor,
		"-policy", polFile, "-from", from.UTC().Format(time.RFC3339)}, app.All, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	require.Contains(t, stdout.String(), "2 of 5 decisions would change")
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, two.ID) || strings.HasPrefix(l, four.ID) {
			require.Contains(t, l, " YES ", l)
		}
		if strings.HasPrefix(l, small.ID) || strings.HasPrefix(l, high.ID) || strings.HasPrefix(l, rejected.ID) {
			require.NotContains(t, l, " YES ", l)
		}
	}
	stdout.Reset()
	require.Equal(t, 1, cli.Main(context.Background(), []string{"canary", "replay", "-url", f.URL(fabric.Canary), "-token", auditor,
		"-id", small.ID, "-region", "eu-west=x"}, app.All, &stdout, &stderr))

	// Refusals: 400 with what is wrong, nothing read or written.
	bad := f.Do(t, http.MethodPost, fabric.Canary, "/canary/replay", auditor, replayBody(t, map[string]any{
		"proposal_ids": []string{small.ID}, "candidate_policy": "version: 1\ndefaults:\n  impact_rules:\n    - name: broken\n      when: abs_replica_delta >=\n      impact: high\n",
	}))
	require.Equal(t, http.StatusBadRequest, bad.Status, string(bad.Body))
	require.Contains(t, string(bad.Body), "candidate_policy")
	require.Contains(t, string(bad.Body), "line 5")
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("01JAAAAAAAAAAAAAAAAAAAA%03d", i)
	}
	r = f.Do(t, http.MethodPost, fabric.Canary, "/canary/replay", auditor, replayBody(t, map[string]any{"proposal_ids": many}))
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Body))
	require.Contains(t, string(r.Body), "at most 100")
	r = f.Do(t, http.MethodPost, fabric.Canary, "/canary/replay", auditor, replayBody(t, map[string]any{
		"proposal_ids": []string{small.ID}, "candidate_model": "gbm-v2",
	}))
	require.Equal(t, http.StatusNotImplemented, r.Status, string(r.Body))
	r = f.Do(t, http.MethodPost, fabric.Canary, "/canary/replay", agent.token, replayBody(t, map[string]any{"proposal_ids": []string{small.ID}}))
	require.Equal(t, http.StatusForbidden, r.Status, "a proposer may not replay: %s", r.Body)

	// Nothing was written: no commit, no audit entry, no notification, no move.
	var seen []any
	labels.Range(func(k, _ any) bool { seen = append(seen, k); return true })
	require.Zero(t, commits.Load(), "the replay committed writes (labels %v)", seen)
	require.Equal(t, before, stateTables(t, f.Store(), ids))
	require.Equal(t, rowsBefore, dumpRows(t, db, st), "every row of every table is as it was")
	es, err := f.Store().Outbox().List(context.Background(), 0, time.Time{}, 10)
	require.NoError(t, err)
	require.Empty(t, es, "no audit event staged")
	require.Equal(t, sizeBefore, auditSize(t, f, auditor), "no audit entry appended")
	notesAfter, err := f.Store().Approvals().ListNotifications(context.Background(), "t1", high.ID)
	require.NoError(t, err)
	require.Len(t, notesAfter, len(notesBefore), "no notification")
}

// TestExportOfARejectedDecisionVerifies: a decision the regions rejected has no
// consensus bundle; its export verifies with Keys.AllowNoConsensus (every other check
// still runs) and not without it, nor when it claims a status reached only by agreeing.
func TestExportOfARejectedDecisionVerifies(t *testing.T) {
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: fabrictest.SQLite})
	agent := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
	p := agent.submit(t, `{"action":"scale","target":"svc-rej","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1,"monthly_cost":50000}}`)
	agent.await(t, p.ID, "PROPOSAL_STATUS_REJECTED")
	auditor := f.Token(t, "t1", auth.RoleAuditor)
	var x *auditorv1.ExportDecisionResponse
	require.Eventually(t, func() bool { // the relay has delivered the rejection
		r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID+"/bundle", auditor, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var err error
		x, err = bundle.ParseExport(r.Body)
		require.NoError(t, err)
		return x.GetStatus() == "REJECTED" && strings.Contains(string(r.Body), `\"status\":\"REJECTED\"`)
	}, 20*time.Second, 50*time.Millisecond)

	keyDir := filepath.Join(f.Cfg.DataDir, "keys")
	ring := &signing.Keyring{}
	require.NoError(t, ring.AddFiles(filepath.Join(keyDir, signing.CosignPubFile)))
	vkey, err := os.ReadFile(filepath.Join(keyDir, auditlog.Ed25519PubFile))
	require.NoError(t, err)
	mpub, err := os.ReadFile(filepath.Join(keyDir, auditlog.MLDSAPubFile))
	require.NoError(t, err)
	v, err := auditlog.NewVerifier(strings.TrimSpace(string(vkey)), mpub)
	require.NoError(t, err)
	reg, err := app.RegionRegistry(f.Cfg)
	require.NoError(t, err)
	keys := bundle.Keys{Cosign: ring, Regions: reg.Trusted(), Audit: v, AllowUnsignedManifest: true}

	_, err = bundle.VerifyExport(x, keys)
	require.ErrorIs(t, err, bundle.ErrMissing, "without the option a bundle is required")
	keys.AllowNoConsensus = true
	rep, err := bundle.VerifyExport(x, keys)
	require.NoError(t, err)
	require.Contains(t, fmt.Sprint(rep.Steps), "SKIPPED: the decision never agreed (REJECTED)")
	require.Contains(t, fmt.Sprint(rep.Steps), "status REJECTED, the status the last audited transition records", "the status check still runs")
	require.Contains(t, fmt.Sprint(rep.Steps), "(the decision never agreed)")

	claimed := proto.CloneOf(x)
	claimed.Status = "ENACTED"
	_, err = bundle.VerifyExport(claimed, keys)
	require.Error(t, err, "an enacted decision must carry its bundle")
	tampered := proto.CloneOf(x)
	tampered.Entries[len(tampered.Entries)-1].Summary = `{"status":"AGREED"}`
	_, err = bundle.VerifyExport(tampered, keys)
	require.Error(t, err, "the audit entries are still checked")
}

// dumpRows renders every row of every table of db, sorted, without the lease deadlines
// the background workers renew (lease_until).
func dumpRows(t *testing.T, db *sql.DB, st fabrictest.Store) string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if st == fabrictest.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`
	}
	rs, err := db.Query(q)
	require.NoError(t, err)
	var tables []string
	for rs.Next() {
		var name string
		require.NoError(t, rs.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rs.Err())
	require.NoError(t, rs.Close())
	require.Contains(t, tables, "proposals")
	var out []string
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM ` + table) // names from the catalogue
		require.NoError(t, err)
		cols, err := rows.Columns()
		require.NoError(t, err)
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			var cells []string
			for i, c := range cols {
				if c == "lease_until" {
					continue
				}
				cells = append(cells, fmt.Sprintf("%s=%v", c, vals[i]))
			}
			lines = append(lines, strings.Join(cells, " "))
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		sort.Strings(lines)
		out = append(out, fmt.Sprintf("%s (%d rows)", table, len(lines)))
		out = append(out, lines...)
	}
	return strings.Join(out, "\n")
}
