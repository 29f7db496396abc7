package notify

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/notify"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

const (
	// nfKills is how many times the fabric is SIGKILLed while it sends.
	nfKills = 3
	// nfPerRound proposals are submitted before each kill (and after the last restart,
	// none: the last round's are delivered by the restarted process).
	nfPerRound = 20
)

// nfProc is the all-in-one fabric (cmd/fabric) as a child process
// (fabrictest.Process) and an HTTP client.
type nfProc struct {
	*fabrictest.Process
	t      *testing.T
	client *http.Client
}

// nfNewProc builds cmd/fabric and writes its configuration: SQLite in a temporary
// data dir, the approval policy, e-mail to mp, a short engine lease so that
// proposals a dead process held are taken over quickly.
func nfNewProc(t *testing.T, mp *fabrictest.Mailpit) *nfProc {
	t.Helper()
	bin := fabrictest.Build(t, t.TempDir())
	proc := fabrictest.NewProcess(t, bin, fabrictest.ProcessOptions{
		Regions: fabrictest.InstantRegions, Policy: fmt.Sprintf(nfPolicy, "5m", "4m"),
		Extra: "engine: {lease: 2s, sweep: 200ms}\n" +
			"hil:\n  channels: [smtp]\n  delivery_lease: 3s\n" +
			fmt.Sprintf("  smtp: {host: %q, port: %d, from: \"hil@fabric.test\", to: [\"approvers@fabric.test\"], tls: none}\n", mp.SMTPHost, mp.SMTPPort),
	})
	return &nfProc{Process: proc, t: t, client: &http.Client{Timeout: 10 * time.Second}}
}

// start starts the process and waits until every service answers /health.
func (p *nfProc) start() {
	p.t.Helper()
	p.Start()
}

// kill SIGKILLs the process and waits until it is gone.
func (p *nfProc) kill() { p.Kill() }

func (p *nfProc) url(service string) string { return p.URL(service) }

// submit posts one proposal for t1 and returns its id (the fabric acknowledged it).
func (p *nfProc) submit(tok, manifest string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, p.url(fabric.Coordinator)+"/proposals",
		strings.NewReader(`{"tenant_id":"t1","manifest":`+manifest+`}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := p.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST /proposals: %d %s", resp.StatusCode, body)
	}
	var out struct{ Proposal struct{ ID string } }
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("POST /proposals: %w: %s", err, body)
	}
	if out.Proposal.ID == "" {
		return "", fmt.Errorf("POST /proposals: no proposal id: %s", body)
	}
	return out.Proposal.ID, nil
}

// TestNotificationsSurviveGatewayKill: the all-in-one fabric as a process, on SQLite,
// mailing approval requests to mailpit (which keeps every message it accepts, a
// repeated Message-ID included). Three times: 20 high-impact proposals are submitted
// at once and the process is SIGKILLed while their requests are being mailed (after
// mailpit received some of them, before it received all), then restarted on the same
// data dir. At the end mailpit holds exactly one e-mail per proposal's request event
// (counted by Message-ID, which the event determines): none lost, none repeated.
func TestNotificationsSurviveGatewayKill(t *testing.T) {
	t.Parallel()
	mp := fabrictest.StartMailpit(t)
	p := nfNewProc(t, mp)
	p.start()
	tok := p.TokenFor("agent-kill", "t1", nil, auth.RoleProposer)

	byMessageID := map[string]string{} // Message-ID -> event id
	window := map[string]int{}         // event id -> kills it was mailed but not marked sent at
	var ids []string
	for round := range nfKills {
		before := mp.Count(t)
		// Submit the round's proposals concurrently; every one must be acknowledged.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for i := range nfPerRound {
			wg.Go(func() {
				id, err := p.submit(tok, fmt.Sprintf(`{"action":"scale","target":"svc-kill-%d-%d","regions":["eu-west"],"parameters":{"replicas":%d}}`, round, i, 1+i))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				ids = append(ids, id)
				event := id + "/" + notify.KindRequest
				byMessageID[notify.MessageID(event)] = event
			})
		}
		wg.Wait()
		require.Empty(t, errs)

		// Kill while the requests are being mailed: once mailpit holds some of this
		// round's, before it holds all of them (or at a random moment within 3 s if it
		// never is in between when looked at).
		target := before + 1 + rand.IntN(nfPerRound/2) //nolint:gosec // a kill point
		deadline := time.Now().Add(3 * time.Second)
		var at int
		for {
			at = mp.Count(t)
			if at >= target || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		p.kill()
		// The window of this kill: requests mailpit accepted whose row the store does
		// not hold as sent (MarkSent had not committed). Only these may be sent again.
		sent := p.sentRequests()
		open := 0
		for _, m := range mp.Messages(t) {
			if event, ok := byMessageID[m.MessageID]; ok && !sent[event] {
				window[event]++
				open++
			}
		}
		after := mp.Count(t)
		t.Logf("round %d: SIGKILL with %d of this round's %d e-mails in mailpit (%d when the process was gone; %d in all); "+
			"%d mailed but not marked sent in the store", round+1, at-before, nfPerRound, after-before, after, open)
		p.start()
	}

	// Every request is mailed once: a row claimed by a killed process waits for its
	// lease (hil.delivery_lease, 3 s here) and is then sent by the restarted one.
	// Wait until the store holds every request as sent (mailpit may hold one of each
	// long before: the repeats come when the leases run out).
	start := time.Now()
	var sent map[string]bool
	require.Eventually(t, func() bool {
		sent = p.sentRequests()
		return len(sent) == len(ids)
	}, 60*time.Second, 200*time.Millisecond, "every request marked sent")
	t.Logf("every request marked sent %s after the last restart", time.Since(start).Round(100*time.Millisecond))
	time.Sleep(1500 * time.Millisecond) // a repeat sent just before its MarkSent lands by now
	msgs := mp.Messages(t)
	perEvent := map[string]int{}
	var unknown []string
	for _, m := range msgs {
		event, ok := byMessageID[m.MessageID]
		if !ok {
			unknown = append(unknown, m.MessageID)
			continue
		}
		perEvent[event]++
	}
	var missing, repeated, unexplained []string
	extra := 0
	for _, id := range ids {
		event := id + "/" + notify.KindRequest
		n := perEvent[event]
		switch {
		case n == 0:
			missing = append(missing, event)
		case n > 1:
			extra += n - 1
			repeated = append(repeated, fmt.Sprintf("%s x%d", event, n))
			if n-1 > window[event] {
				unexplained = append(unexplained, fmt.Sprintf("%s x%d (in the window of %d kills)", event, n, window[event]))
			}
		}
	}
	inWindow := 0
	for _, k := range window {
		inWindow += k
	}
	t.Logf("%d proposals, %d e-mails in mailpit, %d events mailed, %d missing, %d repeated (%d extra e-mails), %d unknown; "+
		"%d e-mails were accepted but not marked sent at a kill", len(ids), len(msgs), len(perEvent), len(missing), len(repeated), extra, len(unknown), inWindow)
	if len(repeated) > 0 {
		t.Logf("repeated (at-least-once: sent again after the lease of a row the killed process had sent but not marked): %v", repeated)
	}
	require.Empty(t, unknown, "e-mails for events nobody requested")
	require.Empty(t, missing, "requests never mailed")
	// Exactly once, except what the documented at-least-once window allows: a request
	// is mailed again only if a kill found it accepted by the SMTP server and not yet
	// marked sent, at most once per such kill. A repeat of a row the store held as sent
	// would be a bug.
	require.Empty(t, unexplained, "requests mailed again although the store held them as sent")
	require.Len(t, msgs, len(ids)+extra)
	require.LessOrEqual(t, extra, inWindow)
	// One send at a time (the deliverer's default): a kill can catch at most the one
	// message accepted and not yet recorded.
	require.LessOrEqual(t, extra, nfKills, "at most one repeat per kill")
}

// sentRequests opens the dead process's SQLite store and returns the request events
// whose outbox row is marked sent.
func (p *nfProc) sentRequests() map[string]bool {
	t := p.t
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.Cfg.DataDir, store.SQLiteFileName)+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT event_id FROM notification_outbox WHERE kind = 'request' AND sent_at IS NOT NULL`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var e string
		require.NoError(t, rows.Scan(&e))
		out[e] = true
	}
	require.NoError(t, rows.Err())
	return out
}
