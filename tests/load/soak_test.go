package load

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Floors of the soak (issue 13, "Soak and crash"). They are stability checks, not
// speeds: the soak's last third of windows against its own first third.
const (
	// soakFraction of the maximum sustainable rate is offered for the whole soak.
	soakFraction = 0.80
	// p99 flat: the median of the last third's per-window p99 is at most
	// soakP99Factor × the first third's, plus soakP99Slack (a shared 2-core machine
	// moves a p99 of tens of milliseconds by that much on its own).
	soakP99Factor = 2.0
	soakP99Slack  = 50 * time.Millisecond
	// memory flat: the median resident set (VmRSS) and Go heap in use of the last
	// third are at most soakMemFactor × the first third's, plus soakMemSlack.
	soakMemFactor = 1.25
	soakMemSlack  = 32 << 20
)

// soakWindow is one window of the soak: its requests' outcomes, and the fabric's
// memory and the lifecycle engine's backlog at its end.
type soakWindow struct {
	tally     *tally
	rss, heap int64
	backlog   int64
}

// TestSoak: the maximum sustainable rate of POST /proposals on a `make run`-like
// fabric (a child process: all services, SQLite, simulation; every proposal
// submitted is negotiated and scored by the lifecycle engine in the same process,
// so the rate is of decisions up to SCORED, without enactment) is measured as
// TestOverload measures it (closed loop); then 80 % of it is offered, open loop,
// for FABRIC_SOAK_DURATION (`make soak`: 10m, in windows of 10 s), or 45 s in
// windows of 5 s in `go test ./...` and CI. It asserts that every request is
// answered 2xx (no refusal, time-out or other answer at 80 % of capacity), that
// everything acknowledged is stored, and that p99 latency, resident set and Go heap
// are flat: the last third of the windows against the first third, within the
// tolerances above. Every figure is printed beside its floor.
func TestSoak(t *testing.T) {
	d, window, measure := 45*time.Second, 5*time.Second, 5*time.Second
	full := false
	if v := os.Getenv("FABRIC_SOAK_DURATION"); v != "" {
		full = true
		var err error
		d, err = time.ParseDuration(v)
		require.NoError(t, err, "FABRIC_SOAK_DURATION")
		window, measure = 10*time.Second, 10*time.Second
	} else if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	require.GreaterOrEqual(t, d, 3*window, "a soak of at least three windows")
	fab := child(t)
	g := newGenerator(fab)
	t.Logf("fabric: %s; RSS after start %d MB", fab.where, fab.rss()>>20)

	// 1. The maximum sustainable rate, as TestOverload finds it.
	base, closedRate, clients := closedLoopMax(t, g, fab.admission, measure)
	maxRate := closedRate
	t.Logf("closed-loop maximum %.0f/s (%d clients, %s; p99 %s)", closedRate, clients, measure, base.p(0.99).Round(time.Millisecond))
	searchAcked := 0 // proposals acknowledged during the search
	if full {
		// The closed loop measures how fast POST /proposals is admitted for a few
		// seconds; each admitted proposal then costs the lifecycle engine its
		// negotiation and scoring, in the same process, after its answer. Sustainable
		// is the highest rate, offered open loop for soakTrial, that the fabric
		// answers without a refusal, with p99 within the admission wait, while the
		// engine keeps up (its backlog does not grow): searched downwards from the
		// closed-loop figure.
		var trials []*tally
		maxRate, trials = sustainableRate(t, g, fab, closedRate)
		for _, tl := range trials {
			searchAcked += len(tl.ok)
		}
	}
	rate := soakFraction * maxRate
	t.Logf("max sustainable rate %.0f/s; soak at %.0f/s for %s", maxRate, rate, d)

	// 2. The soak, with the fabric's memory sampled at the end of each window.
	stopSampling := make(chan struct{})
	samples := make(chan [3]int64, int(d/window)+2)
	go func() {
		defer close(samples)
		tick := time.NewTicker(window)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				samples <- [3]int64{fab.rss(), goHeap(fab.coordinator), int64(fab.inFlight())}
			}
		}
	}()
	tallies := g.openLoopWindows(rate, d, window)
	close(stopSampling)
	var mem [][3]int64
	for s := range samples {
		mem = append(mem, s)
	}
	windows := make([]soakWindow, len(tallies))
	for i, tl := range tallies {
		windows[i].tally = tl
		if len(mem) > 0 {
			m := mem[min(i, len(mem)-1)]
			windows[i].rss, windows[i].heap, windows[i].backlog = m[0], m[1], m[2]
		}
	}

	// 3. Everything acknowledged is stored.
	acked := len(base.ok) + searchAcked
	for _, w := range windows {
		acked += len(w.tally.ok)
	}
	var stored int
	require.Eventually(t, func() bool { stored = fab.stored(); return stored >= acked }, settle, 50*time.Millisecond)
	stored = fab.stored()

	// The figures.
	var sent, ok, refused, timeouts, other, noRetry int
	t.Logf("%6s %8s %8s %9s %9s %8s %8s %8s", "window", "sent", "2xx", "p50", "p99", "RSS MB", "heap MB", "backlog")
	for i, w := range windows {
		tl := w.tally
		sent += tl.total()
		ok += len(tl.ok)
		refused += tl.refused[429] + tl.refused[503]
		timeouts += tl.timeouts
		noRetry += tl.noRetry
		for _, n := range tl.other {
			other += n
		}
		t.Logf("%6d %8d %8d %9s %9s %8d %8d %8d", i+1, tl.total(), len(tl.ok), tl.p(0.50).Round(time.Millisecond),
			tl.p(0.99).Round(time.Millisecond), w.rss>>20, w.heap>>20, w.backlog)
	}
	third := max(1, len(windows)/3)
	first, last := windows[:third], windows[len(windows)-third:]
	p99First, p99Last := soakMedian(first, func(w soakWindow) int64 { return int64(w.tally.p(0.99)) }), soakMedian(last, func(w soakWindow) int64 { return int64(w.tally.p(0.99)) })
	rssFirst, rssLast := soakMedian(first, func(w soakWindow) int64 { return w.rss }), soakMedian(last, func(w soakWindow) int64 { return w.rss })
	heapFirst, heapLast := soakMedian(first, func(w soakWindow) int64 { return w.heap }), soakMedian(last, func(w soakWindow) int64 { return w.heap })
	p99Ceiling := time.Duration(soakP99Factor*float64(p99First)) + soakP99Slack
	rssCeilingSoak := int64(soakMemFactor*float64(rssFirst)) + soakMemSlack
	heapCeiling := int64(soakMemFactor*float64(heapFirst)) + soakMemSlack
	t.Logf("%-44s %12s   %s", "figure", "measured", "floor")
	t.Logf("%-44s %10.0f/s", "closed-loop maximum (POST /proposals, 10 s)", closedRate)
	t.Logf("%-44s %10.0f/s   no refusal, p99 <= max_wait, engine keeps up, %s open loop", "max sustainable rate", maxRate, soakTrial)
	t.Logf("%-44s %10.0f/s   %.0f%% of the maximum, for %s", "offered", rate, 100*soakFraction, d)
	t.Logf("%-44s %10.0f/s", "goodput (2xx)", float64(ok)/d.Seconds())
	t.Logf("%-44s %12d   = sent (%d)", "answered 2xx", ok, sent)
	var r503, r429 int
	for _, w := range windows {
		r503, r429 = r503+w.tally.refused[503], r429+w.tally.refused[429]
	}
	t.Logf("%-44s %12d   0 (503: %d, 429: %d; without Retry-After: %d)", "refused", refused, r503, r429, noRetry)
	t.Logf("%-44s %12d   0", "client time-outs", timeouts)
	t.Logf("%-44s %12d   0", "other answers", other)
	t.Logf("%-44s %12s   (first window)", "p99, first window", windows[0].tally.p(0.99).Round(time.Millisecond))
	t.Logf("%-44s %12s   (last window)", "p99, last window", windows[len(windows)-1].tally.p(0.99).Round(time.Millisecond))
	t.Logf("%-44s %12s", fmt.Sprintf("p99, median of the first %d windows", third), time.Duration(p99First).Round(time.Millisecond))
	t.Logf("%-44s %12s   <= %s (%.0fx first third + %s)", fmt.Sprintf("p99, median of the last %d windows", third), time.Duration(p99Last).Round(time.Millisecond),
		p99Ceiling.Round(time.Millisecond), soakP99Factor, soakP99Slack)
	t.Logf("%-44s %9d MB   (first window %d MB, last %d MB)", "RSS, median of the first third", rssFirst>>20, windows[0].rss>>20, windows[len(windows)-1].rss>>20)
	t.Logf("%-44s %9d MB   <= %d MB (%.2fx first third + %d MB)", "RSS, median of the last third", rssLast>>20, rssCeilingSoak>>20, soakMemFactor, soakMemSlack>>20)
	t.Logf("%-44s %9d MB   (first window %d MB, last %d MB)", "Go heap in use, median of the first third", heapFirst>>20, windows[0].heap>>20, windows[len(windows)-1].heap>>20)
	t.Logf("%-44s %9d MB   <= %d MB (%.2fx first third + %d MB)", "Go heap in use, median of the last third", heapLast>>20, heapCeiling>>20, soakMemFactor, soakMemSlack>>20)
	t.Logf("%-44s %9d MB", "peak RSS of the fabric (VmHWM)", fab.peakRSS()>>20)
	t.Logf("%-44s %12d   (first window %d; proposals SUBMITTED, NEGOTIATING or AGREED)", "lifecycle backlog, last window", windows[len(windows)-1].backlog, windows[0].backlog)
	t.Logf("%-44s %12s   stored == acknowledged", "stored / acknowledged", fmt.Sprintf("%d/%d", stored, acked))

	// Correctness, in every run: no time-out, no answer but 2xx or a refusal that
	// says when to retry, everything acknowledged stored.
	require.Zero(t, timeouts, "client time-outs")
	require.Zero(t, other, "answers other than 2xx, 429 and 503")
	require.Zero(t, noRetry, "every 429/503 says when to retry")
	require.Equal(t, acked, stored, "everything acknowledged is stored, and nothing else")
	require.Positive(t, rssFirst, "the fabric's resident set was sampled")
	require.Positive(t, heapFirst, "the fabric's Go heap was sampled")
	// Stability: the full run only. The short one shares two cores with the other
	// test packages, whose load moves the capacity by more than the 20 % of headroom
	// and a p99 by more than its tolerance; it prints the figures.
	if !full {
		t.Logf("short run: refusals, p99 and memory printed, not asserted (FABRIC_SOAK_DURATION asserts them)")
		return
	}
	require.Zero(t, refused, "at 80 % of the maximum sustainable rate no request is refused")
	require.Equal(t, sent, ok, "every request answered 2xx")
	require.LessOrEqual(t, time.Duration(p99Last), p99Ceiling, "p99 flat: the last third's median p99 against the first third's")
	require.LessOrEqual(t, rssLast, rssCeilingSoak, "RSS flat: the last third's median against the first third's")
	require.LessOrEqual(t, heapLast, heapCeiling, "Go heap flat: the last third's median against the first third's")
}

// soakTrial is how long each rate of the search is offered; soakStep is the factor
// between two rates tried; soakTrials bounds the search.
const (
	soakTrial  = 30 * time.Second
	soakStep   = 0.85
	soakTrials = 8
)

// sustainableRate searches the highest rate, from start down by soakStep, that a
// soakTrial of open-loop load passes: no refusal, no time-out, no other answer, p99
// within the admission wait, and the lifecycle backlog at its end no larger than
// one second of the rate (the engine keeps up). It returns the rate and the trials'
// tallies (their proposals are stored too).
func sustainableRate(t *testing.T, g *generator, fab *target, start float64) (float64, []*tally) {
	t.Helper()
	maxWait := time.Duration(fab.admission.MaxWait)
	var trials []*tally
	rate := start
	for i := range soakTrials {
		before := fab.inFlight()
		tl := g.openLoop(rate, soakTrial)
		trials = append(trials, tl)
		// Let what the trial left settle before the next one (or the soak).
		backlog := fab.inFlight()
		refused := tl.refused[429] + tl.refused[503]
		others := 0
		for _, n := range tl.other {
			others += n
		}
		ok := refused == 0 && tl.timeouts == 0 && others == 0 && tl.p(0.99) <= maxWait && float64(backlog) <= float64(before)+rate
		t.Logf("search %d: %.0f/s for %s: refused %d, time-outs %d, other %d, p99 %s (<= %s), backlog %d -> %d (<= +%.0f): %v",
			i+1, rate, soakTrial, refused, tl.timeouts, others, tl.p(0.99).Round(time.Millisecond), maxWait, before, backlog, rate, ok)
		deadline := time.Now().Add(time.Minute)
		for fab.inFlight() > 0 && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
		}
		if ok {
			return rate, trials
		}
		rate *= soakStep
	}
	t.Fatalf("no rate down to %.0f/s is sustained for %s", rate/soakStep, soakTrial)
	return 0, nil
}

// soakMedian is the median of f over windows.
func soakMedian(windows []soakWindow, f func(soakWindow) int64) int64 {
	v := make([]int64, 0, len(windows))
	for _, w := range windows {
		v = append(v, f(w))
	}
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// goHeap is the Go heap in use (go_memstats_heap_inuse_bytes) of the process behind
// a service's base URL, read from its /metrics; 0 when unavailable.
func goHeap(base string) int64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return 0
			}
			return int64(v)
		}
	}
	return 0
}
