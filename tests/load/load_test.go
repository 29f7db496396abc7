// Package load drives POST /proposals beyond the fabric's capacity and checks that
// admission control holds: the fabric keeps its goodput, answers what it cannot take
// with 429/503 at once instead of timing out, stays within its memory, and stores
// nothing its clients did not hear about.
//
// The full run (`make load`, FABRIC_LOAD=1) first measures the maximum sustainable
// rate of POST /proposals on a `make run`-like fabric (all services in one process,
// embedded SQLite, simulation), then offers 4× that rate for 30 s and asserts the
// figures against their floors. Without FABRIC_LOAD a short version (about 3 s at 4×)
// runs with the other tests as a correctness check: it asserts only the
// classification of responses and stored == acknowledged, never a speed.
//
// TestSoak (soak_test.go, `make soak`) offers 80 % of the maximum sustainable rate
// for ten minutes and checks that p99 latency and memory stay flat.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Floors of the full run (issue #9, "Admission control").
const (
	overloadFactor = 4
	goodputFloor   = 0.80             // of the maximum sustainable rate
	p99Ceiling     = time.Second      // of admitted (2xx) requests
	rssCeiling     = 300 << 20        // bytes, peak resident set of the process
	clientTimeout  = 5 * time.Second  // a request not answered by then is a time-out
	settle         = 10 * time.Second // longest wait for the fabric to finish what it took
)

// tenants spread the load, as many clients of a shared fabric would.
var tenants = []string{"t1", "t2", "t3", "t4"}

// outcome is one request's result.
type outcome struct {
	status  int // 0: no response
	timeout bool
	err     error
	latency time.Duration
}

// tally classifies outcomes.
type tally struct {
	mu       sync.Mutex
	ok       []time.Duration // latencies of 2xx
	refused  map[int]int     // 429, 503
	timeouts int
	other    map[string]int // anything else: status or error
	noRetry  int            // 429/503 without Retry-After
}

func newTally() *tally { return &tally{refused: map[int]int{}, other: map[string]int{}} }

func (t *tally) add(o outcome, retryAfter string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case o.timeout:
		t.timeouts++
	case o.err != nil:
		t.other[o.err.Error()]++
	case o.status/100 == 2:
		t.ok = append(t.ok, o.latency)
	case o.status == http.StatusTooManyRequests || o.status == http.StatusServiceUnavailable:
		t.refused[o.status]++
		if retryAfter == "" {
			t.noRetry++
		}
	default:
		t.other[strconv.Itoa(o.status)]++
	}
}

func (t *tally) total() int {
	n := len(t.ok) + t.timeouts + t.refused[429] + t.refused[503]
	for _, c := range t.other {
		n += c
	}
	return n
}

func (t *tally) p(q float64) time.Duration {
	if len(t.ok) == 0 {
		return 0
	}
	s := slices.Clone(t.ok)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// generator sends POST /proposals to one fabric.
type generator struct {
	url    string
	tokens []string
	client *http.Client
	seq    atomic.Int64
}

func newGenerator(tg *target) *generator {
	g := &generator{
		url: tg.coordinator + "/proposals",
		client: &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
			MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute,
			DialContext: (&net.Dialer{Timeout: clientTimeout}).DialContext,
		}},
	}
	for _, tn := range tenants {
		g.tokens = append(g.tokens, tg.token(tn))
	}
	return g
}

// post submits one new proposal. A client time-out cancels the request (the
// connection is closed), as a real client giving up does.
func (g *generator) post(ctx context.Context) (outcome, string) {
	i := g.seq.Add(1)
	tn := int(i) % len(tenants)
	body := fmt.Sprintf(`{"tenant_id":%q,"manifest":{"action":"scale","target":"svc-%d"}}`, tenants[tn], i%50)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, strings.NewReader(body))
	if err != nil {
		return outcome{err: err}, ""
	}
	req.Header.Set("Authorization", "Bearer "+g.tokens[tn])
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			return outcome{timeout: true}, ""
		}
		return outcome{err: errors.Unwrap(err)}, ""
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	lat := time.Since(start)
	if err != nil {
		var ne net.Error
		return outcome{timeout: errors.As(err, &ne) && ne.Timeout(), err: err}, ""
	}
	return outcome{status: resp.StatusCode, latency: lat}, resp.Header.Get("Retry-After")
}

// closedLoop runs workers that each send one request after another for d: the
// fabric's maximum sustainable rate is the rate of 2xx it then answers.
func (g *generator) closedLoop(workers int, d time.Duration) *tally {
	tl := newTally()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				o, ra := g.post(context.Background())
				tl.add(o, ra)
			}
		})
	}
	wg.Wait()
	return tl
}

// openLoop offers rate requests per second for d whatever the answers (an open
// system: new clients keep coming), then waits for every request to end.
func (g *generator) openLoop(rate float64, d time.Duration) *tally {
	return g.openLoopWindows(rate, d, d)[0]
}

// openLoopWindows is openLoop with the outcomes tallied per window of the offer: a
// request counts in the window in which it was sent.
func (g *generator) openLoopWindows(rate float64, d, window time.Duration) []*tally {
	tallies := make([]*tally, max(1, int((d+window-1)/window)))
	for w := range tallies {
		tallies[w] = newTally()
	}
	var wg sync.WaitGroup
	start := time.Now()
	n := int(rate * d.Seconds())
	for i := range n {
		at := time.Duration(float64(i) / rate * float64(time.Second))
		if wait := time.Until(start.Add(at)); wait > 0 {
			time.Sleep(wait)
		}
		tl := tallies[min(len(tallies)-1, int(at/window))]
		wg.Go(func() {
			o, ra := g.post(context.Background())
			tl.add(o, ra)
		})
	}
	wg.Wait()
	return tallies
}

// TestOverload is the load test: see the package comment. The short version runs on
// both stores.
func TestOverload(t *testing.T) {
	if os.Getenv("FABRIC_LOAD") == "1" {
		overload(t, child(t), 10*time.Second, 30*time.Second, true)
		return
	}
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) { overload(t, inProcess(t, st), 2*time.Second, 3*time.Second, false) })
	}
}

// closedLoopMax measures the closed-loop maximum rate of POST /proposals for measure:
// enough clients, each sending its next request when answered, to keep every slot
// busy and some waiting, never so many that the queue overflows. At capacity every
// request succeeds. It returns the tally, the rate of 2xx and the clients.
func closedLoopMax(t *testing.T, g *generator, adm config.Admission, measure time.Duration) (*tally, float64, int) {
	t.Helper()
	clients := adm.MaxInFlight + adm.MaxQueue/2
	base := g.closedLoop(clients, measure)
	require.Empty(t, base.other, "at capacity every request succeeds")
	require.Zero(t, base.timeouts)
	rate := float64(len(base.ok)) / measure.Seconds()
	require.Positive(t, rate)
	return base, rate, clients
}

// overload measures the maximum sustainable rate for measure, offers 4x that for d,
// and checks the outcome; full also asserts the speed and memory floors.
func overload(t *testing.T, fab *target, measure, d time.Duration, full bool) {
	adm := fab.admission
	g := newGenerator(fab)
	t.Logf("fabric: %s; peak RSS after start %d MB", fab.where, fab.peakRSS()>>20)

	// 1. The maximum sustainable rate (closed loop).
	base, maxRate, clients := closedLoopMax(t, g, adm, measure)
	t.Logf("peak RSS after the first phase: %d MB", fab.peakRSS()>>20)

	// 2. Four times that, offered whatever the answers.
	offered := overloadFactor * maxRate
	over := g.openLoop(offered, d)
	goodput := float64(len(over.ok)) / d.Seconds()
	p99 := over.p(0.99)
	rss := fab.peakRSS()

	// 3. Everything acknowledged is stored, and nothing else: a request refused or
	//    abandoned left no proposal behind. The fabric first finishes what it took.
	acked := len(base.ok) + len(over.ok)
	var stored int
	require.Eventually(t, func() bool { stored = fab.stored(); return stored >= acked }, settle, 50*time.Millisecond)
	stored = fab.stored()

	t.Logf("admission: max_in_flight=%d max_queue=%d max_wait=%s", adm.MaxInFlight, adm.MaxQueue, time.Duration(adm.MaxWait))
	t.Logf("%-34s %10s   %s", "figure", "measured", "floor")
	t.Logf("%-34s %8.0f/s   (closed loop, %d clients, %s; p99 %s)", "max sustainable rate", maxRate, clients, measure, base.p(0.99).Round(time.Millisecond))
	t.Logf("%-34s %8.0f/s   for %s (%d requests)", "offered (4x)", offered, d, over.total())
	t.Logf("%-34s %8.0f/s   >= %.0f/s (80%% of max)", "goodput (2xx)", goodput, goodputFloor*maxRate)
	t.Logf("%-34s %10s   < %s", "p99 of admitted requests", p99.Round(time.Millisecond), p99Ceiling)
	t.Logf("%-34s %10s", "p50 of admitted requests", over.p(0.50).Round(time.Millisecond))
	t.Logf("%-34s %10d   (503: %d, 429: %d; without Retry-After: %d, must be 0)", "refused", over.refused[503]+over.refused[429], over.refused[503], over.refused[429], over.noRetry)
	t.Logf("%-34s %10d   must be 0", "client time-outs", over.timeouts)
	t.Logf("%-34s %10v   must be empty", "other answers (5xx other than 503...)", over.other)
	t.Logf("%-34s %7d MB   < %d MB", "peak RSS of the fabric (VmHWM)", rss>>20, rssCeiling>>20)
	t.Logf("%-34s %10s   stored == acknowledged", "stored / acknowledged", fmt.Sprintf("%d/%d", stored, acked))
	m, err := http.Get(fab.coordinator + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(m.Body)
	m.Body.Close()
	for line := range strings.Lines(string(metrics)) {
		if strings.HasPrefix(line, "fabric_admission_refused_total{") {
			t.Logf("coordinator %s", strings.TrimSpace(line))
		}
	}

	// Correctness, in every run.
	require.Empty(t, over.other, "every request is answered 2xx, 429 or 503")
	require.Zero(t, over.timeouts, "no request times out: what cannot be taken is refused at once")
	require.Zero(t, over.noRetry, "every 429/503 says when to retry")
	require.Equal(t, acked, stored, "nothing unacknowledged is stored")
	require.Positive(t, over.refused[503]+over.refused[429], "4x the capacity is refused in part")

	// Speed and memory: the full run only (a short run on a shared machine measures noise).
	if full {
		require.GreaterOrEqual(t, goodput, goodputFloor*maxRate, "goodput under 4x overload")
		require.Less(t, p99, p99Ceiling, "p99 of admitted requests")
		if rss > 0 {
			require.Less(t, rss, int64(rssCeiling), "peak RSS")
		}
	}
}
