// Package replicas runs two or more replicas of the fabric against one Postgres
// (issue 13): two all-in-one processes (cmd/fabric, built once), and the seven
// services as seven processes racing an all-in-one one, each on one fresh database,
// sharing a data directory (the same keys), with concurrent decisions split across
// their REST gateways. Afterwards it checks, from the answers and the store's rows,
// that each proposal was negotiated once and enacted once, and that the audit log
// verifies with every proposal's events in the order they happened.
//
// Postgres only: without a server the test is skipped, or fails with
// FABRIC_REQUIRE_POSTGRES=1. `make replicas` (FABRIC_REPLICAS_FULL=1) runs 1000
// decisions; `go test ./...` runs 200.
package replicas

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver: the checks read the rows
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// bin is cmd/fabric, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fabric-replicas-")
	if err == nil {
		bin, err = fabrictest.BuildBinary(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	pgtest.Shutdown()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Both tenants negotiate with three regions that answer at once.
const replicaRegions = `
quorum_rule: majority
regions:
  - {name: eu-west, capacity: 100000}
  - {name: eu-central, capacity: 100000}
  - {name: us-east, capacity: 100000}
tenants:
  t1:
    regions: [eu-west, eu-central, us-east]
  t2:
    regions: [eu-west, eu-central, us-east]
`

// replicaPolicy classifies every change as low impact: no human step, the client enacts.
const replicaPolicy = `
version: 1
defaults:
  quorum: majority
  max_monthly_cost_delta: 0
  impact_rules: []
`

var replicaTenants = []string{"t1", "t2"}

// replicaConcurrency bounds the decisions in flight at once (two shared cores).
const replicaConcurrency = 48

// decisions is N: 1000 with FABRIC_REPLICAS_FULL=1, else 200.
func decisions() int {
	if os.Getenv("FABRIC_REPLICAS_FULL") == "1" {
		return 1000
	}
	return 200
}

// TestTwoAllInOneReplicas: N decisions split across two all-in-one replicas on one
// Postgres database.
func TestTwoAllInOneReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("replicas test: skipped with -short")
	}
	dsn := pgtest.NewDSN(t) // skips without a server, unless FABRIC_REQUIRE_POSTGRES=1
	data := t.TempDir()
	var reps []*fabrictest.Process
	for i := range 2 {
		p := fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{DSN: dsn, Regions: replicaRegions, Policy: replicaPolicy,
			DataDir: data, Name: fmt.Sprintf("replica-%d", i)})
		p.Start() // one after the other: the first creates the shared keys
		reps = append(reps, p)
	}
	runReplicas(t, dsn, reps, decisions())
}

// TestSplitSetRacesAnAllInOneReplica: the seven services as seven processes and an
// all-in-one fabric, on one Postgres database: N decisions split across the two sets'
// gateways, each set's coordinator, negotiator and auditor racing the other's.
func TestSplitSetRacesAnAllInOneReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("replicas test: skipped with -short")
	}
	dsn := pgtest.NewDSN(t)
	data := t.TempDir()
	all := fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{DSN: dsn, Regions: replicaRegions, Policy: replicaPolicy,
		DataDir: data, Name: "all-in-one"})
	all.Start() // first: it creates the shared keys
	services := fabrictest.FreeServicePorts(t)
	var split []*fabrictest.Process
	for _, s := range fabric.Services {
		p := fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{DSN: dsn, Regions: replicaRegions, Policy: replicaPolicy,
			DataDir: data, Target: s.Name, Services: services, Name: "split-" + s.Name})
		p.Start()
		split = append(split, p)
	}
	// Every process of the split set has the set's addresses: the first stands for it.
	runReplicas(t, dsn, []*fabrictest.Process{all, split[0]}, decisions())
}

// TestCanaryRolloutTakenOverFromAKilledReplica: a rollout driven by one sim-canary
// replica (which waits an hour before judging its first wave) is taken over by the
// other once the first is SIGKILLed and its lease has ended; the other judges and
// promotes it, each wave made once.
func TestCanaryRolloutTakenOverFromAKilledReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("replicas test: skipped with -short")
	}
	dsn := pgtest.NewDSN(t)
	data := t.TempDir()
	slow := fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{DSN: dsn, Regions: replicaRegions, Policy: replicaPolicy,
		DataDir: data, Name: "slow", Extra: "canary: {settle: 1h}\n"})
	slow.Start()
	quick := fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{DSN: dsn, Regions: replicaRegions, Policy: replicaPolicy,
		DataDir: data, Name: "quick"})
	quick.Start()
	reps := []*fabrictest.Process{slow, quick}
	c := newReplicaClient(reps)
	ctx := context.Background()
	d := c.score(ctx, 0)
	require.Empty(t, d.problems)

	code, body, err := c.retry(ctx, d.tenant, http.MethodPost, slow.URL(fabric.Canary)+"/canary/run", fmt.Sprintf(`{"proposal_id":%q}`, d.id))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, string(body))
	var started struct {
		Run struct {
			ID     string            `json:"id"`
			State  string            `json:"state"`
			Reason string            `json:"reason"`
			Stages []json.RawMessage `json:"stages"`
		} `json:"run"`
	}
	require.NoError(t, json.Unmarshal(body, &started))
	require.Equal(t, "RUNNING", started.Run.State)
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	var owner string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT lease_owner FROM canary_runs WHERE id = $1 AND lease_until > now()`, started.Run.ID).Scan(&owner),
		"the run is leased to the replica that started it")
	slow.Kill() // its lease on the run stays until it ends

	run := started.Run
	for polls := 0; run.State == "RUNNING"; polls++ {
		require.Less(t, polls, 120, "the rollout is still RUNNING: no replica took it over")
		time.Sleep(500 * time.Millisecond)
		code, body, err = c.retry(ctx, d.tenant, http.MethodGet, quick.URL(fabric.Canary)+"/canary/"+run.ID+"/result", "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, string(body))
		require.NoError(t, json.Unmarshal(body, &started))
		run = started.Run
	}
	require.Equal(t, "PROMOTED", run.State, run.Reason)
	var waves int
	for polls := 0; ; polls++ {
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM audit_entries WHERE proposal_id = $1 AND event = 'canary.stage_enacted'`, d.id).Scan(&waves))
		if waves >= len(run.Stages) || polls == 120 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.Equal(t, len(run.Stages), waves, "each wave enacted once")
}

func newReplicaClient(reps []*fabrictest.Process) *replicaClient {
	c := &replicaClient{reps: reps, tokens: map[string]string{},
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * replicaConcurrency}}}
	for _, tenant := range replicaTenants {
		c.tokens[tenant] = reps[0].Token(tenant, auth.RoleProposer)
	}
	return c
}

// replicaClient sends the decisions' requests.
type replicaClient struct {
	reps   []*fabrictest.Process
	http   *http.Client
	tokens map[string]string
}

func (c *replicaClient) do(ctx context.Context, tenant, method, url, body string, headers ...string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.tokens[tenant])
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// retry repeats a request shed by admission control (503, 429) or cut (transport
// error), a bounded number of times.
func (c *replicaClient) retry(ctx context.Context, tenant, method, url, body string, headers ...string) (int, []byte, error) {
	wait := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		code, raw, err := c.do(ctx, tenant, method, url, body, headers...)
		if (err == nil && code != http.StatusServiceUnavailable && code != http.StatusTooManyRequests) || attempt == 50 {
			return code, raw, err
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
}

// decision is one proposal's story as the client saw it.
type decision struct {
	tenant, target, id string
	status             string
	enacted            int      // 200 answers to POST /enact (sent to every replica at once)
	problems           []string // answers no client should get
}

type proposalView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// decide runs decision i: composed and submitted on replica i%n, followed on the
// next replica, enacted on every replica at the same time.
func (c *replicaClient) decide(ctx context.Context, i int) *decision {
	d := c.score(ctx, i)
	if len(d.problems) > 0 {
		return d
	}
	return c.enact(ctx, d)
}

// score runs decision i up to SCORED: composed and submitted on replica i%n, followed
// on the next replica.
func (c *replicaClient) score(ctx context.Context, i int) *decision {
	d := &decision{tenant: replicaTenants[i%len(replicaTenants)], target: fmt.Sprintf("rep-%d", i)}
	fail := func(format string, args ...any) *decision {
		d.problems = append(d.problems, fmt.Sprintf(format, args...))
		return d
	}
	home, other := c.reps[i%len(c.reps)], c.reps[(i+1)%len(c.reps)]
	code, body, err := c.retry(ctx, d.tenant, http.MethodPost, home.URL(fabric.Composer)+"/compose", fmt.Sprintf(
		`{"tenant_id":%q,"context":"scale out, cpu is high","target":%q,"template_id":"scale-out","regions":["eu-west","eu-central","us-east"]}`, d.tenant, d.target))
	if err != nil || code != http.StatusOK {
		return fail("compose %s: %d %s %v", d.target, code, body, err)
	}
	var composed struct {
		Manifest  json.RawMessage `json:"manifest"`
		Signature json.RawMessage `json:"signature"`
	}
	if err := json.Unmarshal(body, &composed); err != nil {
		return fail("compose %s: %v", d.target, err)
	}
	code, body, err = c.retry(ctx, d.tenant, http.MethodPost, home.URL(fabric.Coordinator)+"/proposals",
		fmt.Sprintf(`{"tenant_id":%q,"manifest":%s,"signature":%s}`, d.tenant, composed.Manifest, composed.Signature),
		"Idempotency-Key", "key-"+d.target)
	var got struct {
		Proposal proposalView `json:"proposal"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Proposal.ID == "" {
		return fail("submit %s: %d %s %v", d.target, code, body, err)
	}
	d.id, d.status = got.Proposal.ID, got.Proposal.Status
	for polls := 0; d.status == "PROPOSAL_STATUS_SUBMITTED" || d.status == "PROPOSAL_STATUS_NEGOTIATING" || d.status == "PROPOSAL_STATUS_AGREED"; polls++ {
		if polls == 120 {
			return fail("%s still %s after 120 polls", d.id, d.status)
		}
		code, body, err = c.retry(ctx, d.tenant, http.MethodGet, other.URL(fabric.Coordinator)+"/proposals/"+d.id+"?wait_ms=1000", "")
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &got) != nil {
			return fail("GET %s: %d %s %v", d.id, code, body, err)
		}
		d.status = got.Proposal.Status
	}
	if d.status != "PROPOSAL_STATUS_SCORED" {
		return fail("%s ended %s (%s), not SCORED", d.id, d.status, got.Proposal.Reason)
	}
	return d
}

// enact sends POST /enact for a SCORED decision to every replica at once.
func (c *replicaClient) enact(ctx context.Context, d *decision) *decision {
	var wg sync.WaitGroup
	codes := make([]int, len(c.reps))
	bodies := make([][]byte, len(c.reps))
	for r, rep := range c.reps {
		wg.Go(func() {
			codes[r], bodies[r], _ = c.retry(ctx, d.tenant, http.MethodPost, rep.URL(fabric.Coordinator)+"/proposals/"+d.id+"/enact", `{}`)
		})
	}
	wg.Wait()
	for r := range c.reps {
		switch codes[r] {
		case http.StatusOK:
			d.enacted++
		case http.StatusConflict: // the other replica's enactment won
		default:
			d.problems = append(d.problems, fmt.Sprintf("enact %s on replica %d: %d %s", d.id, r, codes[r], bodies[r]))
		}
	}
	return d
}

// approval submits decision i as high impact on replica i%n: it waits for an
// approver, and the hil-gateway notifies of it (the simulated channel).
func (c *replicaClient) approval(ctx context.Context, i int) (string, error) {
	tenant, target := replicaTenants[i%len(replicaTenants)], fmt.Sprintf("rep-high-%d", i)
	code, body, err := c.retry(ctx, tenant, http.MethodPost, c.reps[i%len(c.reps)].URL(fabric.Coordinator)+"/proposals", fmt.Sprintf(
		`{"tenant_id":%q,"manifest":{"action":"scale","target":%q,"regions":["eu-west","eu-central","us-east"],"impact":"high","parameters":{"replicas_delta":1}}}`,
		tenant, target), "Idempotency-Key", "key-"+target)
	var got struct {
		Proposal proposalView `json:"proposal"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Proposal.ID == "" {
		return "", fmt.Errorf("submit %s: %d %s: %w", target, code, body, err)
	}
	return got.Proposal.ID, nil
}

func runReplicas(t *testing.T, dsn string, reps []*fabrictest.Process, n int) {
	c := newReplicaClient(reps)
	ctx := context.Background()
	began := time.Now()
	out := make([]*decision, n)
	sem := make(chan struct{}, replicaConcurrency)
	var wg sync.WaitGroup
	// One in ten more decisions are high impact: they wait for an approver, and each
	// is notified of once.
	high := make([]string, n/10)
	highErr := make([]error, n/10)
	for i := range high {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			high[i], highErr[i] = c.approval(ctx, i)
		})
	}
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = c.decide(ctx, i)
		})
	}
	wg.Wait()
	t.Logf("%d decisions on %d replicas in %s", n, len(reps), time.Since(began).Round(time.Millisecond))

	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()

	// The client's view: every decision enacted, by exactly one of the concurrent
	// POST /enact.
	var problems []string
	byID := map[string]*decision{}
	for _, d := range out {
		problems = append(problems, d.problems...)
		if d.id != "" {
			byID[d.id] = d
			if d.status == "PROPOSAL_STATUS_SCORED" && d.enacted != 1 {
				problems = append(problems, fmt.Sprintf("%s: %d replicas answered 200 to its enactment, want 1", d.id, d.enacted))
			}
		}
	}
	require.Len(t, byID, n, "proposals acknowledged")

	// The store's view: one ENACTED proposal per decision.
	rows, err := db.QueryContext(ctx, `SELECT status, count(*) FROM proposals GROUP BY status`)
	require.NoError(t, err)
	statuses := map[string]int{}
	for rows.Next() {
		var s string
		var k int
		require.NoError(t, rows.Scan(&s, &k))
		statuses[s] = k
	}
	require.NoError(t, rows.Err())
	t.Logf("proposals by status: %v", statuses)
	if statuses["ENACTED"] != n {
		problems = append(problems, fmt.Sprintf("%d proposals ENACTED in the store, want %d (%v)", statuses["ENACTED"], n, statuses))
	}
	for i, err := range highErr {
		require.NoError(t, err, "high impact decision %d", i)
	}

	// Notifications: each approval request notified once, sent once (one attempt).
	highIDs := map[string]bool{}
	for _, id := range high {
		highIDs[id] = true
	}
	var unsent int
	for polls := 0; ; polls++ {
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM notification_outbox WHERE kind = 'request' AND sent_at IS NULL`).Scan(&unsent))
		if unsent == 0 || polls == 240 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	rows, err = db.QueryContext(ctx, `SELECT proposal_id, count(*), min(attempts), max(attempts), count(sent_at)
		FROM notification_outbox WHERE kind = 'request' GROUP BY proposal_id`)
	require.NoError(t, err)
	notified := 0
	for rows.Next() {
		var pid string
		var k, minA, maxA, sent int
		require.NoError(t, rows.Scan(&pid, &k, &minA, &maxA, &sent))
		notified++
		if !highIDs[pid] {
			problems = append(problems, fmt.Sprintf("notification for %s, which waits for nobody", pid))
		}
		if k != 1 || sent != 1 || minA != 1 || maxA != 1 {
			problems = append(problems, fmt.Sprintf("%s: %d request notification(s), %d sent, attempts %d..%d; want one sent at the first attempt", pid, k, sent, minA, maxA))
		}
	}
	require.NoError(t, rows.Err())
	t.Logf("approval requests notified: %d of %d", notified, len(high))
	if notified != len(high) {
		problems = append(problems, fmt.Sprintf("%d approval requests notified, want %d", notified, len(high)))
	}

	// Negotiations: one per proposal, AGREED, with the votes of a majority of its three
	// regions (a negotiation ends at quorum; one vote per region and round is the
	// table's key).
	rows, err = db.QueryContext(ctx, `SELECT n.proposal_id, n.state, (SELECT count(*) FROM negotiation_votes v WHERE v.negotiation_id = n.id)
		FROM negotiations n`)
	require.NoError(t, err)
	negs := map[string]int{}
	for rows.Next() {
		var pid, state string
		var votes int
		require.NoError(t, rows.Scan(&pid, &state, &votes))
		negs[pid]++
		if state != "AGREED" || votes < 2 || votes > 3 {
			problems = append(problems, fmt.Sprintf("negotiation of %s: %s with %d votes, want AGREED with 2 or 3", pid, state, votes))
		}
	}
	require.NoError(t, rows.Err())
	for id := range byID {
		if negs[id] != 1 {
			problems = append(problems, fmt.Sprintf("%s has %d negotiations, want 1", id, negs[id]))
		}
	}

	// The world: each target (its own per decision) changed once in each region.
	rows, err = db.QueryContext(ctx, `SELECT version, count(*) FROM world_states WHERE target LIKE 'rep-%' AND target NOT LIKE 'rep-high-%' GROUP BY version`)
	require.NoError(t, err)
	versions := map[int64]int{}
	for rows.Next() {
		var v int64
		var k int
		require.NoError(t, rows.Scan(&v, &k))
		versions[v] = k
	}
	require.NoError(t, rows.Err())
	t.Logf("world states by version: %v", versions)
	if len(versions) != 1 {
		problems = append(problems, fmt.Sprintf("world states of the targets are at different versions %v: some changed more often", versions))
	}

	// The audit trail: the outbox drained, then each proposal's lifecycle once, in order.
	var pending int
	for polls := 0; ; polls++ {
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM audit_outbox`).Scan(&pending))
		if pending == 0 || polls == 240 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.Zero(t, pending, "audit events still in the outbox after 240 polls")
	problems = append(problems, checkAuditOrder(t, db, byID)...)

	if len(problems) > 0 {
		sort.Strings(problems)
		t.Errorf("%d problem(s); the first:\n%s", len(problems), strings.Join(problems[:min(len(problems), 30)], "\n"))
	}
	code, outText := reps[0].AuditVerify()
	require.Equal(t, 0, code, "audit-verify:\n%s", outText)
}

// lifecycle are the events of a low-impact decision, in the order they happen.
var lifecycle = []string{"proposal.submitted", "proposal.negotiating", "proposal.agreed", "proposal.scored", "proposal.enacted"}

// checkAuditOrder: each proposal's lifecycle events are in its tenant's log once
// each, at increasing positions.
func checkAuditOrder(t *testing.T, db *sql.DB, byID map[string]*decision) []string {
	rows, err := db.Query(`SELECT tenant_id, idx, proposal_id, event FROM audit_entries ORDER BY tenant_id, idx`)
	require.NoError(t, err)
	defer rows.Close()
	seen := map[string]map[string][]int64{}
	next := map[string]int64{}
	var problems []string
	for rows.Next() {
		var tenant, pid, event string
		var idx int64
		require.NoError(t, rows.Scan(&tenant, &idx, &pid, &event))
		if idx != next[tenant] {
			problems = append(problems, fmt.Sprintf("tenant %s: entry %d follows %d", tenant, idx, next[tenant]-1))
		}
		next[tenant] = idx + 1
		if seen[pid] == nil {
			seen[pid] = map[string][]int64{}
		}
		seen[pid][event] = append(seen[pid][event], idx)
	}
	require.NoError(t, rows.Err())
	for id := range byID {
		last := int64(-1)
		for _, ev := range lifecycle {
			at := seen[id][ev]
			switch {
			case len(at) != 1:
				problems = append(problems, fmt.Sprintf("%s: %d %s entries, want 1", id, len(at), ev))
			case at[0] < last:
				problems = append(problems, fmt.Sprintf("%s: %s at %d, before the previous event at %d", id, ev, at[0], last))
			default:
				last = at[0]
			}
		}
	}
	t.Logf("audit log: %v entries per tenant", next)
	return problems
}
