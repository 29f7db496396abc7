package crash

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
)

// crashProposal is the part of a proposal (GET /proposals/{id}) the checks read.
type crashProposal struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Status   string `json:"status"`
	Manifest struct {
		Target  string   `json:"target"`
		Regions []string `json:"regions"`
	} `json:"manifest"`
	PreStateSHA256  string    `json:"pre_state_sha256"`
	PostStateSHA256 string    `json:"post_state_sha256"`
	Reason          string    `json:"reason"`
	CreatedAt       time.Time `json:"created_at"`
	Votes           *struct {
		NegotiationID string `json:"negotiation_id"`
		Outcome       string `json:"outcome"`
	} `json:"votes"`
	Policy *struct {
		DecisionTimeoutMS int64 `json:"decision_timeout_ms,string"`
	} `json:"policy"`
}

func (p *crashProposal) negotiationID() string {
	if p.Votes == nil {
		return ""
	}
	return p.Votes.NegotiationID
}

// deadline is the proposal's negotiation deadline: its creation plus the deadline the
// policy set for it (P6).
func (p *crashProposal) deadline() time.Time {
	if p.Policy == nil {
		return time.Time{}
	}
	return p.CreatedAt.Add(time.Duration(p.Policy.DecisionTimeoutMS) * time.Millisecond)
}

// Proposal statuses, as the REST API spells them.
const (
	crashSubmitted   = "PROPOSAL_STATUS_SUBMITTED"
	crashNegotiating = "PROPOSAL_STATUS_NEGOTIATING"
	crashAgreed      = "PROPOSAL_STATUS_AGREED"
	crashRejected    = "PROPOSAL_STATUS_REJECTED"
	crashExpired     = "PROPOSAL_STATUS_EXPIRED"
	crashScored      = "PROPOSAL_STATUS_SCORED"
	crashEnacted     = "PROPOSAL_STATUS_ENACTED"
	crashRolledBack  = "PROPOSAL_STATUS_ROLLED_BACK"
	crashPending     = "PROPOSAL_STATUS_PENDING_APPROVAL"
)

// crashInFlight: the fabric still owes these proposals a move (negotiation, its
// outcome, a score); every other status is final or waits for a client.
func crashInFlight(status string) bool {
	return status == crashSubmitted || status == crashNegotiating || status == crashAgreed
}

// crashAck is a proposal the fabric acknowledged: a 200 answer to its submission.
type crashAck struct {
	ID, Tenant, Target, Key string
	// NegotiationID is the negotiation the submission's answer named ("" when it
	// answered SUBMITTED).
	NegotiationID string
	AckedAt       time.Time
	// High: submitted as high impact, it waits for an approver and is notified of.
	High bool
}

// crashDone is a decision the load finished (enacted, or final without a client's
// move): when, and on which replica its last answer came.
type crashDone struct {
	At      time.Time
	Replica int
}

// crashLoad is the load: clients that each run one decision after another
// (compose → submit with an Idempotency-Key → poll → enact), through kills. With
// more than one replica (fs), client i starts each decision on replica i/2 mod n and
// moves to the next one whenever a request fails at the transport (crashVia).
type crashLoad struct {
	fs    []*crashFabric
	store string
	// highEvery > 0: every highEvery-th decision of a client is high impact (it
	// waits for an approver, who is notified); 0: none.
	highEvery int
	client    *http.Client
	tokens    map[string]string

	mu       sync.Mutex
	acks     []crashAck
	byKey    map[string]string // Idempotency-Key → proposal id first acknowledged
	problems []string          // answers no client should ever get
	enacted  int
	enact409 []string
	done     []crashDone
}

// newCrashLoad is the load on one fabric, or on replicas of one fabric (one store,
// one data directory: the same keys).
func newCrashLoad(store string, fs ...*crashFabric) *crashLoad {
	l := &crashLoad{
		fs: fs, store: store, byKey: map[string]string{}, tokens: map[string]string{},
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	for tenant := range crashRegionsOf {
		l.tokens[tenant] = fs[0].Token(tenant, auth.RoleProposer)
	}
	return l
}

// crashVia is the replica a client's requests go to: the next one after a transport
// error (that replica is dead, or its connection was cut). One goroutine's.
type crashVia struct{ at int }

// do sends one request to service's path on via's replica; err is a transport error
// (the process is dead, the connection was cut), after which via names the next
// replica.
func (l *crashLoad) do(ctx context.Context, via *crashVia, tenant, method, service, path, body string, headers ...string) (int, []byte, error) {
	url := l.fs[via.at%len(l.fs)].URL(service) + path
	code, raw, err := l.send(ctx, tenant, method, url, body, headers...)
	if err != nil {
		via.at++
	}
	return code, raw, err
}

func (l *crashLoad) send(ctx context.Context, tenant, method, url, body string, headers ...string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.tokens[tenant])
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// crashRetryable: the fabric is dead, restarting or shedding load; the client
// retries the same request.
func crashRetryable(code int, err error) bool {
	return err != nil || code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests ||
		code == http.StatusBadGateway || code == http.StatusGatewayTimeout
}

func (l *crashLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// retry runs op until it answers something other than a retryable failure, or ctx
// ends (then ok is false).
func crashRetry(ctx context.Context, op func() (int, []byte, error)) (code int, body []byte, ok bool) {
	wait := 20 * time.Millisecond
	for {
		code, body, err := op()
		if !crashRetryable(code, err) {
			return code, body, true
		}
		select {
		case <-ctx.Done():
			return 0, nil, false
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// run starts n clients; stop ends them: they start no new decision, finish the one
// they are in (bounded: after 30 s it is cut), and are gone when stop returns.
func (l *crashLoad) run(n int) (stop func()) {
	abort, cancelAbort := context.WithCancel(context.Background())
	stopNew := make(chan struct{})
	var clients sync.WaitGroup
	for i := range n {
		clients.Go(func() { l.runClient(abort, stopNew, i) })
	}
	return func() {
		defer cancelAbort()
		close(stopNew)
		done := make(chan struct{})
		go func() { clients.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cancelAbort()
			<-done
		}
	}
}

// runClient runs decisions until stopNew is closed; abort ends the one in progress.
func (l *crashLoad) runClient(abort context.Context, stopNew <-chan struct{}, i int) {
	tenant := "t1"
	if i%2 == 1 {
		tenant = "t2"
	}
	for n := 0; ; n++ {
		select {
		case <-stopNew:
			return
		default:
		}
		high := l.highEvery > 0 && n%l.highEvery == l.highEvery-1
		// Clients 0 and 1 start their decisions on replica 0, 2 and 3 on replica 1, ...:
		// both tenants on every replica.
		l.decide(abort, &crashVia{at: i / 2}, tenant, fmt.Sprintf("crash-%s-c%d-%d", l.store, i, n), high)
		if abort.Err() != nil {
			return
		}
	}
}

// decide runs one decision on a target no other proposal touches: composed (a
// signed manifest) and enacted by the client, or, when high, submitted as high
// impact and left waiting for an approver.
func (l *crashLoad) decide(ctx context.Context, via *crashVia, tenant, target string, high bool) {
	regions, _ := json.Marshal(crashRegionsOf[tenant])
	submit := fmt.Sprintf(`{"tenant_id":%q,"manifest":{"action":"scale","target":%q,"regions":%s,"impact":"high","parameters":{"replicas_delta":1}}}`,
		tenant, target, regions)
	if !high {
		code, body, ok := crashRetry(ctx, func() (int, []byte, error) {
			return l.do(ctx, via, tenant, http.MethodPost, fabric.Composer, "/compose", fmt.Sprintf(
				`{"tenant_id":%q,"context":"scale out, cpu is high","target":%q,"template_id":"scale-out","regions":%s}`, tenant, target, regions))
		})
		if !ok {
			return
		}
		if code != http.StatusOK {
			l.problem("compose %s: %d %s", target, code, body)
			return
		}
		var composed struct {
			Manifest  json.RawMessage `json:"manifest"`
			Signature json.RawMessage `json:"signature"`
		}
		if err := json.Unmarshal(body, &composed); err != nil {
			l.problem("compose %s: %v", target, err)
			return
		}
		submit = fmt.Sprintf(`{"tenant_id":%q,"manifest":%s,"signature":%s}`, tenant, composed.Manifest, composed.Signature)
	}
	key := "key-" + target
	code, body, ok := crashRetry(ctx, func() (int, []byte, error) {
		return l.do(ctx, via, tenant, http.MethodPost, fabric.Coordinator, "/proposals", submit, "Idempotency-Key", key)
	})
	if !ok {
		return
	}
	if code != http.StatusOK {
		l.problem("submit %s: %d %s", target, code, body)
		return
	}
	var sub struct {
		Proposal crashProposal `json:"proposal"`
	}
	if err := json.Unmarshal(body, &sub); err != nil || sub.Proposal.ID == "" {
		l.problem("submit %s: unreadable answer %q (%v)", target, body, err)
		return
	}
	p := sub.Proposal
	l.mu.Lock()
	if first, seen := l.byKey[key]; seen && first != p.ID {
		l.problems = append(l.problems, fmt.Sprintf("Idempotency-Key %s acknowledged as %s, then as %s", key, first, p.ID))
	}
	l.byKey[key] = p.ID
	l.acks = append(l.acks, crashAck{ID: p.ID, Tenant: tenant, Target: target, Key: key, NegotiationID: p.negotiationID(), AckedAt: time.Now(), High: high})
	l.mu.Unlock()

	for crashInFlight(p.Status) {
		code, body, ok = crashRetry(ctx, func() (int, []byte, error) {
			return l.do(ctx, via, tenant, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID+"?wait_ms=1000", "")
		})
		if !ok {
			return
		}
		if code != http.StatusOK {
			// Not a client's problem to solve: the checks after the run read it again.
			l.problem("GET %s while %s: %d %s", p.ID, p.Status, code, body)
			return
		}
		var got struct {
			Proposal crashProposal `json:"proposal"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			l.problem("GET %s: %v", p.ID, err)
			return
		}
		p = got.Proposal
	}
	if p.Status != crashScored {
		l.finished(via) // REJECTED, EXPIRED: final; PENDING_APPROVAL: an approver's move
		return
	}
	code, body, ok = crashRetry(ctx, func() (int, []byte, error) {
		return l.do(ctx, via, tenant, http.MethodPost, fabric.Coordinator, "/proposals/"+p.ID+"/enact", `{}`)
	})
	switch {
	case !ok:
	case code == http.StatusOK:
		l.finished(via)
		l.mu.Lock()
		l.enacted++
		l.mu.Unlock()
	case code == http.StatusConflict:
		// E.g. "already ENACTED" for a retry whose first attempt was applied before
		// a kill; the checks decide whether the world agrees.
		l.finished(via)
		l.mu.Lock()
		l.enact409 = append(l.enact409, fmt.Sprintf("%s: %s", p.ID, body))
		l.mu.Unlock()
	default:
		l.problem("enact %s: %d %s", p.ID, code, body)
	}
}

// finished records a decision's end, answered by via's replica.
func (l *crashLoad) finished(via *crashVia) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = append(l.done, crashDone{At: time.Now(), Replica: via.at % len(l.fs)})
}

// getProposal reads a proposal once (no retry) from via's replica: status 0 with err
// on a transport error.
func (l *crashLoad) getProposal(ctx context.Context, via *crashVia, tenant, id string) (int, *crashProposal, []byte, error) {
	code, body, err := l.do(ctx, via, tenant, http.MethodGet, fabric.Coordinator, "/proposals/"+id, "")
	if err != nil || code != http.StatusOK {
		return code, nil, body, err
	}
	var got struct {
		Proposal crashProposal `json:"proposal"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return code, nil, body, err
	}
	if got.Proposal.ID != id {
		return code, nil, body, errors.New("answer names another proposal")
	}
	return code, &got.Proposal, body, nil
}
