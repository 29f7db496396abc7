// Package crash is the fabric's crash test (issue 10, acceptance): the all-in-one
// process (cmd/fabric, built once) runs under a load of concurrent clients and is
// SIGKILLed at random points, restarted on the same store each time, on SQLite and on
// Postgres. After the last restart it checks that
//
//	(a) every proposal the fabric acknowledged (200 to its submission) is there, with
//	    its pre-state snapshot;
//	(b) nothing was negotiated after its deadline: every vote and round of a
//	    proposal's negotiation is within the negotiation's deadline, which is the
//	    proposal's; a proposal has at most one negotiation; one whose deadline passed
//	    while the process was dead ended EXPIRED or REJECTED with a reason, never
//	    AGREED afterwards;
//	(c) no enactment is half done: the world's state of an ENACTED proposal's target
//	    hashes to its post-state snapshot, and that of any other proposal's target
//	    still to its pre-state (every proposal has a target of its own);
//	(d) the audit log verifies (`fabric audit-verify`), while the fabric runs after
//	    the crashes and again after a last SIGKILL.
//
// `make crash` (FABRIC_CRASH=1) kills 10 times per store; `go test ./...` runs a
// short version (2 kills per store). FABRIC_CRASH_SEED=n replays a run's kill points
// (each run logs its seed).
//
// TestReplicaCrash (replica_test.go) runs the same load over two replicas on one
// Postgres database and SIGKILLs one of them at a time while the other serves.
package crash

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver: negotiations per proposal, read only
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	// crashShortDeadline is tenant t2's negotiation deadline: its regions answer in
	// 400 ms, so its negotiations usually agree, but one running at a kill passes its
	// deadline while the process is dead (crashDowntime is longer).
	crashShortDeadline = 1500 * time.Millisecond
	// crashDowntime is how long the process stays dead after each kill.
	crashDowntime = crashShortDeadline + time.Second
	// crashStartSlack: a negotiation starts after its proposal is stored, so its
	// deadline may be this much later than the proposal's (creation + the policy's
	// deadline). A negotiation started again after a restart is later by at least
	// crashDowntime.
	crashStartSlack = 750 * time.Millisecond
	// crashClients run decisions concurrently, half for each tenant.
	crashClients = 8
	// crashSettlePasses bounds the reads of the proposals still in flight after the
	// last restart (one pass reads each of them once, then waits crashSettleWait).
	crashSettlePasses = 60
	crashSettleWait   = 500 * time.Millisecond
	// crashProbers read the world's state of the targets concurrently.
	crashProbers = 8
)

// TestCrash: see the package comment.
func TestCrash(t *testing.T) {
	kills := 2
	if os.Getenv("FABRIC_CRASH") == "1" {
		kills = 10
	} else if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	seed := crashSeed(t)
	bin := fabrictest.Build(t, t.TempDir())
	for i, st := range []string{"sqlite", "postgres"} {
		t.Run(st, func(t *testing.T) {
			dsn := ""
			if st == "postgres" {
				dsn = pgtest.NewDSN(t) // skips without a server, unless FABRIC_REQUIRE_POSTGRES=1
			}
			crashRun(t, bin, st, dsn, kills, rand.New(rand.NewPCG(seed, uint64(i))))
		})
	}
}

// crashSeed is the run's seed of its kill points: FABRIC_CRASH_SEED, or the clock's.
func crashSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FABRIC_CRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "FABRIC_CRASH_SEED")
	}
	t.Logf("seed %d (replay the kill points with FABRIC_CRASH_SEED=%d)", seed, seed)
	return seed
}

// crashKill is one kill: when, and when the restarted fabric answered again.
type crashKill struct {
	at, back time.Time
}

func crashRun(t *testing.T, bin, st, dsn string, kills int, rng *rand.Rand) {
	began := time.Now()
	f := crashNewFabric(t, bin, dsn)
	f.Start()
	load := newCrashLoad(st, f)
	stop := load.run(crashClients)
	var dead []crashKill
	for k := range kills {
		run := time.Duration(1500+rng.IntN(2500)) * time.Millisecond
		time.Sleep(run)
		load.mu.Lock()
		acked := len(load.acks)
		load.mu.Unlock()
		t.Logf("kill %d/%d after %s of load (%d proposals acknowledged so far)", k+1, kills, run, acked)
		at := time.Now()
		f.Kill()
		time.Sleep(crashDowntime)
		f.Start()
		dead = append(dead, crashKill{at: at, back: time.Now()})
	}
	time.Sleep(time.Duration(1000+rng.IntN(1000)) * time.Millisecond)
	stop()

	load.mu.Lock()
	acks := slices.Clone(load.acks)
	problems := slices.Clone(load.problems)
	t.Logf("%d kills; %d proposals acknowledged, %d enacted by the clients, %d enactments answered 409",
		kills, len(acks), load.enacted, len(load.enact409))
	for _, e := range load.enact409 {
		t.Logf("enact 409: %s", e)
	}
	load.mu.Unlock()
	require.NotEmpty(t, acks, "the load acknowledged no proposal")

	final := crashSettle(t, load, acks)

	t.Run("acknowledged_present", func(t *testing.T) { crashCheckPresent(t, load, acks, final, problems) })
	t.Run("no_negotiation_after_deadline", func(t *testing.T) { crashCheckNegotiations(t, load, acks, final, dead) })
	t.Run("enactments_whole", func(t *testing.T) { crashCheckEnactments(t, load, acks, final) })
	t.Run("audit_verifies", func(t *testing.T) { crashCheckAudit(t, f) })
	t.Logf("%s: %d kills, %d acknowledged proposals checked, %s", st, kills, len(acks), time.Since(began).Round(time.Second))
}

// crashSettle reads every acknowledged proposal until none is in flight, or for
// crashSettlePasses passes; it returns the last answer for each (nil: never 200).
func crashSettle(t *testing.T, load *crashLoad, acks []crashAck) map[string]*crashProposal {
	final := map[string]*crashProposal{}
	pending := slices.Clone(acks)
	ctx := context.Background()
	via := &crashVia{}
	for pass := 0; pass < crashSettlePasses && len(pending) > 0; pass++ {
		if pass > 0 {
			time.Sleep(crashSettleWait)
		}
		var still []crashAck
		for _, a := range pending {
			code, p, _, err := load.getProposal(ctx, via, a.Tenant, a.ID)
			if err == nil && code == http.StatusOK {
				final[a.ID] = p
				if !crashInFlight(p.Status) {
					continue
				}
			}
			still = append(still, a)
		}
		pending = still
	}
	if len(pending) > 0 {
		t.Logf("after %d passes, %d proposals are still in flight or unreadable", crashSettlePasses, len(pending))
	}
	return final
}

// (a) every acknowledged proposal is there, with its pre-state snapshot.
func crashCheckPresent(t *testing.T, load *crashLoad, acks []crashAck, final map[string]*crashProposal, problems []string) {
	// An answer other than 200 or a refusal to retry (429, 503) is one no client of a
	// healthy fabric gets, crash or not. A 409 to an enactment (a retry of one applied
	// before a kill) is not a problem here: enactments_whole checks the world.
	for _, p := range problems {
		t.Errorf("a client was answered: %s", p)
	}
	seen := map[string]bool{}
	via := &crashVia{}
	for _, a := range acks {
		if seen[a.ID] {
			continue // acknowledged again by an Idempotency-Key replay
		}
		seen[a.ID] = true
		code, p, body, err := load.getProposal(context.Background(), via, a.Tenant, a.ID)
		switch {
		case err != nil || code != http.StatusOK:
			t.Errorf("acknowledged proposal %s (%s, acknowledged %s): GET %d %v %s", a.ID, a.Target, a.AckedAt.Format(time.RFC3339Nano), code, err, body)
		case p.PreStateSHA256 == "":
			t.Errorf("proposal %s has no pre-state snapshot", a.ID)
		case p.Manifest.Target != a.Target:
			t.Errorf("proposal %s: target %q, acknowledged for %q", a.ID, p.Manifest.Target, a.Target)
		case p.Policy == nil || p.Policy.DecisionTimeoutMS <= 0:
			t.Errorf("proposal %s has no decision deadline in its policy record", a.ID)
		default:
			final[a.ID] = p
		}
	}
	t.Logf("%d distinct acknowledged proposals present", len(seen))
}

// crashNegotiation is the part of a negotiation (GET /negotiate/{id}/status) the
// checks read.
type crashNegotiation struct {
	ID         string    `json:"id"`
	ProposalID string    `json:"proposal_id"`
	State      string    `json:"state"`
	Deadline   time.Time `json:"deadline"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	Reason     string    `json:"reason"`
	Votes      []struct {
		Region  string    `json:"region"`
		Round   int32     `json:"round"`
		Verdict string    `json:"verdict"`
		CastAt  time.Time `json:"cast_at"`
	} `json:"votes"`
}

// (b) nothing was negotiated after its deadline.
func crashCheckNegotiations(t *testing.T, load *crashLoad, acks []crashAck, final map[string]*crashProposal, dead []crashKill) {
	byProposal := crashNegotiationsByProposal(t, load.fs[0])
	var found []string
	bad := func(format string, args ...any) {
		found = append(found, fmt.Sprintf(format, args...))
	}
	var checked, votes, passedWhileDead, expiredWhileDead, agreedBeforeKill int
	now := time.Now()
	seen := map[string]bool{}
	for _, a := range acks {
		p := final[a.ID]
		if p == nil || seen[a.ID] {
			continue // (a) reports it
		}
		seen[a.ID] = true
		checked++
		deadline := p.deadline()
		ids := byProposal[a.ID]
		if len(ids) > 1 {
			bad("proposal %s (%s) has %d negotiations %v (one proposal, one negotiation)", p.ID, p.Status, len(ids), ids)
		}
		if a.NegotiationID != "" && p.negotiationID() != a.NegotiationID {
			bad("proposal %s was acknowledged with negotiation %s, now names %s", p.ID, a.NegotiationID, p.negotiationID())
		}
		if crashInFlight(p.Status) && now.After(deadline.Add(crashStartSlack)) {
			bad("proposal %s is still %s, %s after its deadline (%s): it must end at its deadline with a reason",
				p.ID, p.Status, now.Sub(deadline).Round(time.Millisecond), deadline.Format(time.RFC3339Nano))
		}
		if p.Status == crashExpired && p.Reason == "" {
			bad("proposal %s is EXPIRED without a reason", p.ID)
		}
		// The kill, if any, during which the proposal's deadline passed.
		var during *crashKill
		for i := range dead {
			if deadline.After(dead[i].at) && deadline.Before(dead[i].back) {
				during = &dead[i]
			}
		}
		agreedAfter := !crashInFlight(p.Status) && p.Status != crashRejected && p.Status != crashExpired
		var lastVote, lastStarted time.Time
		for _, id := range ids {
			n, err := crashGetNegotiation(load, a.Tenant, id)
			if err != nil {
				bad("negotiation %s of proposal %s: %v", id, p.ID, err)
				continue
			}
			if id == p.negotiationID() {
				lastStarted = n.CreatedAt
			}
			if n.ProposalID != p.ID {
				bad("negotiation %s belongs to %s, not %s", id, n.ProposalID, p.ID)
			}
			// Started by a read after a restart, for a proposal a kill left SUBMITTED:
			// the known bug's signature.
			restarted := crashKillBetween(dead, p.CreatedAt, n.CreatedAt)
			if n.CreatedAt.After(deadline) {
				bad("negotiation %s of proposal %s started %s, after the proposal's deadline %s",
					id, p.ID, n.CreatedAt.Format(time.RFC3339Nano), deadline.Format(time.RFC3339Nano))
			}
			if n.Deadline.After(deadline.Add(crashStartSlack)) {
				bad("negotiation %s of proposal %s (%s; created %s) runs until %s (started %s%s), past the proposal's deadline %s",
					id, p.ID, p.Status, p.CreatedAt.Format(time.RFC3339Nano), n.Deadline.Format(time.RFC3339Nano), n.CreatedAt.Format(time.RFC3339Nano),
					map[bool]string{true: ", after a restart", false: ""}[restarted], deadline.Format(time.RFC3339Nano))
			}
			for _, v := range n.Votes {
				votes++
				if v.CastAt.After(n.Deadline) {
					bad("negotiation %s of proposal %s: %s's vote of round %d cast at %s, after the deadline %s",
						id, p.ID, v.Region, v.Round, v.CastAt.Format(time.RFC3339Nano), n.Deadline.Format(time.RFC3339Nano))
				}
				if id == p.negotiationID() && v.CastAt.After(lastVote) {
					lastVote = v.CastAt
				}
			}
			if n.State == "NEGOTIATION_STATE_AGREED" && n.UpdatedAt.After(n.Deadline.Add(crashStartSlack)) && (len(n.Votes) == 0 || n.Votes[len(n.Votes)-1].CastAt.After(n.Deadline)) {
				bad("negotiation %s of proposal %s agreed at %s, after its deadline %s", id, p.ID, n.UpdatedAt.Format(time.RFC3339Nano), n.Deadline.Format(time.RFC3339Nano))
			}
			if n.State == "NEGOTIATION_STATE_EXPIRED" && n.Reason == "" {
				bad("negotiation %s of proposal %s expired without a reason", id, p.ID)
			}
		}
		if during != nil {
			passedWhileDead++
			switch {
			case p.Status == crashExpired || p.Status == crashRejected:
				expiredWhileDead++
				if p.Reason == "" {
					bad("proposal %s, whose deadline passed while the fabric was dead, is %s without a reason", p.ID, p.Status)
				}
			case agreedAfter && !lastVote.IsZero() && lastVote.Before(during.at) && !lastStarted.After(during.at):
				agreedBeforeKill++
			case agreedAfter:
				bad("proposal %s: its deadline %s passed while the fabric was dead (%s..%s) and it is %s, agreed on votes up to %s",
					p.ID, deadline.Format(time.RFC3339Nano), during.at.Format(time.RFC3339Nano), during.back.Format(time.RFC3339Nano), p.Status, lastVote.Format(time.RFC3339Nano))
			}
		}
	}
	t.Logf("%d proposals, %d votes checked; %d deadlines passed while the fabric was dead: %d of those proposals ended EXPIRED or REJECTED, %d had agreed before the kill",
		checked, votes, passedWhileDead, expiredWhileDead, agreedBeforeKill)
	if len(found) == 0 {
		require.Positive(t, expiredWhileDead, "no negotiation was caught by a kill and expired while the fabric was dead: the run did not test it")
		return
	}
	for _, v := range found {
		t.Log(v)
	}
	t.Errorf("%d violations (see above)", len(found))
}

// crashKillBetween reports whether a kill came between a and b.
func crashKillBetween(dead []crashKill, a, b time.Time) bool {
	for _, k := range dead {
		if k.at.After(a) && k.at.Before(b) {
			return true
		}
	}
	return false
}

// crashNegotiationsByProposal lists the negotiation ids of every proposal, read from
// the store (read only): the negotiator's API reads a negotiation by its id only.
func crashNegotiationsByProposal(t *testing.T, f *crashFabric) map[string][]string {
	driver, dsn := "sqlite", "file:"+filepath.Join(f.Cfg.DataDir, store.SQLiteFileName)+"?mode=ro&_pragma=busy_timeout(5000)"
	if f.DSN != "" {
		driver, dsn = "pgx", f.DSN
	}
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT proposal_id, id FROM negotiations ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var p, id string
		require.NoError(t, rows.Scan(&p, &id))
		out[p] = append(out[p], id)
	}
	require.NoError(t, rows.Err())
	return out
}

func crashGetNegotiation(load *crashLoad, tenant, id string) (*crashNegotiation, error) {
	code, body, err := load.do(context.Background(), &crashVia{}, tenant, http.MethodGet, fabric.Negotiator, "/negotiate/"+id+"/status", "")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /negotiate/%s/status: %d %s", id, code, body)
	}
	var got struct {
		Negotiation crashNegotiation `json:"negotiation"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return nil, err
	}
	return &got.Negotiation, nil
}

// (c) no enactment is half done. The world's current state of a target is read
// through the coordinator: a dry-run-only probe proposal for the same target and
// regions records it as its pre-state.
func crashCheckEnactments(t *testing.T, load *crashLoad, acks []crashAck, final map[string]*crashProposal) {
	seen := map[string]bool{}
	counts := map[string]int{}
	var ps []*crashProposal
	for _, a := range acks {
		p := final[a.ID]
		if p == nil || seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		counts[p.Status]++
		ps = append(ps, p)
	}
	// The probes, crashProbers at a time (spread over the replicas).
	states, failures := make([]string, len(ps)), make([]string, len(ps))
	next := make(chan int)
	var probers sync.WaitGroup
	for w := range crashProbers {
		probers.Go(func() {
			via := &crashVia{at: w}
			for i := range next {
				states[i], failures[i] = crashProbe(load, via, ps[i])
			}
		})
	}
	for i := range ps {
		next <- i
	}
	close(next)
	probers.Wait()
	for i, p := range ps {
		now := states[i]
		if failures[i] != "" {
			t.Errorf("probe of %s: %s", p.Manifest.Target, failures[i])
			continue
		}
		switch p.Status {
		case crashEnacted:
			if p.PostStateSHA256 == "" {
				t.Errorf("proposal %s is ENACTED without a post-state snapshot", p.ID)
			} else if now != p.PostStateSHA256 {
				t.Errorf("proposal %s is ENACTED with post-state %s, but %s is now %s", p.ID, p.PostStateSHA256, p.Manifest.Target, now)
			}
		default:
			// Nothing else ever moved this target: it must be as the proposal found it.
			if now != p.PreStateSHA256 {
				t.Errorf("proposal %s is %s (%s), but its target %s changed: pre-state %s, now %s (an enactment applied without its record?)",
					p.ID, p.Status, p.Reason, p.Manifest.Target, p.PreStateSHA256, now)
			}
		}
	}
	var names []string
	for s, n := range counts {
		names = append(names, fmt.Sprintf("%s=%d", strings.TrimPrefix(s, "PROPOSAL_STATUS_"), n))
	}
	sort.Strings(names)
	t.Logf("final states: %s", strings.Join(names, " "))
	require.Positive(t, counts[crashEnacted], "no proposal was enacted: the run did not test enactment")
}

// crashProbe reads the world's current state of p's target (the pre-state hash of a
// dry-run probe proposal); failure says why it could not.
func crashProbe(load *crashLoad, via *crashVia, p *crashProposal) (state, failure string) {
	regions, _ := json.Marshal(p.Manifest.Regions)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, body, ok := crashRetry(ctx, func() (int, []byte, error) {
		return load.do(ctx, via, p.TenantID, http.MethodPost, fabric.Coordinator, "/proposals", fmt.Sprintf(
			`{"tenant_id":%q,"dry_run":true,"manifest":{"action":"scale","target":%q,"regions":%s,"parameters":{"replicas":1}}}`,
			p.TenantID, p.Manifest.Target, regions))
	})
	if !ok {
		return "", "no answer within a minute"
	}
	var probe struct {
		Proposal crashProposal `json:"proposal"`
	}
	if code != http.StatusOK {
		return "", fmt.Sprintf("%d %s", code, body)
	}
	if err := json.Unmarshal(body, &probe); err != nil || probe.Proposal.PreStateSHA256 == "" {
		return "", fmt.Sprintf("no pre-state in %s (%v)", body, err)
	}
	return probe.Proposal.PreStateSHA256, ""
}

// (d) the audit log verifies: now, with the fabric running after its crashes (the
// default bounds: the auditor signed what was left unsigned by the kills), and after
// a last SIGKILL of every replica (no age limit on the unsigned tail, which a dead
// auditor could not sign; its size stays bounded).
func crashCheckAudit(t *testing.T, fs ...*crashFabric) {
	f := fs[0]
	code, out := f.AuditVerify()
	t.Logf("audit-verify (running fabric):\n%s", out)
	require.Equal(t, 0, code, "audit-verify on the running fabric after the crashes")
	for _, r := range fs {
		r.Kill()
	}
	code, out = f.AuditVerify("-max-unsigned-age", "0")
	t.Logf("audit-verify (after a last SIGKILL, -max-unsigned-age 0):\n%s", out)
	require.Equal(t, 0, code, "audit-verify after a last SIGKILL")
}
