package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// pollInterval is how long a client waits before re-reading a proposal that a long poll
// (GET /proposals/{id}?wait_ms=) left unfinished: what a well-behaved API client does,
// rather than a tight loop.
const pollInterval = 10 * time.Millisecond

// BenchmarkDecisionPath drives the low-impact decision path over REST with 32
// concurrent clients (the throughput figure), then with one (the latency of a
// decision on an idle fabric): compose (signed) -> submit (signature verified) ->
// negotiate across 5 regions -> score -> enact, each client long-polling
// GET /proposals/{id}?wait_ms=5000 until the proposal is SCORED, in both topologies
// (one process; seven) on both stores. It reports p50/p99 latency of one whole
// decision, decisions per second and CPU per decision, beside the floor from the same
// run: one REST round trip plus one durable commit on the same store (issue 10's
// definition); any failed decision fails it.
func BenchmarkDecisionPath(b *testing.B) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		for _, topo := range []fabrictest.Topology{fabrictest.AllInOne, fabrictest.Split} {
			for _, clients := range []int{32, 1} {
				b.Run(fmt.Sprintf("%s/%s/clients=%d", st, topo, clients), func(b *testing.B) { decisionPath(b, st, topo, clients) })
			}
		}
	}
}

func decisionPath(b *testing.B, st fabrictest.Store, topo fabrictest.Topology, clients int) {
	f := fabrictest.Start(b, fabrictest.Options{Topology: topo, Store: st, Configure: fabrictest.InstantLowImpact(b)})
	tok := f.Token(b, "t1", auth.RoleProposer)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	do := func(method, url, body string) (int, []byte, error) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp.StatusCode, raw, err
	}
	coord, composer := f.URL(fabric.Coordinator), f.URL(fabric.Composer)
	// answer is a request's outcome as an error: the transport's, or a status other
	// than 200 with its body.
	answer := func(what string, code int, body []byte, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("%s: %d %s", what, code, body)
		}
		return nil
	}
	decide := func(i int) error {
		code, body, err := do(http.MethodPost, composer+"/compose", fmt.Sprintf(
			`{"tenant_id":"t1","context":"scale out, cpu is high","target":"svc-%d","template_id":"scale-out","regions":["eu-west","eu-central","us-east","us-west","ap-south"]}`, i))
		if err := answer("compose", code, body, err); err != nil {
			return err
		}
		var composed struct {
			Manifest  json.RawMessage `json:"manifest"`
			Signature json.RawMessage `json:"signature"`
		}
		if err := json.Unmarshal(body, &composed); err != nil {
			return err
		}
		code, body, err = do(http.MethodPost, coord+"/proposals", fmt.Sprintf(
			`{"tenant_id":"t1","manifest":%s,"signature":%s}`, composed.Manifest, composed.Signature))
		if err := answer("submit", code, body, err); err != nil {
			return err
		}
		var p struct {
			Proposal struct{ ID, Status string } `json:"proposal"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		for deadline, first := time.Now().Add(20*time.Second), true; p.Proposal.Status != "PROPOSAL_STATUS_SCORED"; first = false {
			if time.Now().After(deadline) {
				return fmt.Errorf("proposal stuck in %s", p.Proposal.Status)
			}
			if !first {
				time.Sleep(pollInterval)
			}
			code, body, err = do(http.MethodGet, coord+"/proposals/"+p.Proposal.ID+"?wait_ms=5000", "")
			if err := answer("get", code, body, err); err != nil {
				return err
			}
			if err := json.Unmarshal(body, &p); err != nil {
				return err
			}
			if strings.Contains(p.Proposal.Status, "REJECTED") || strings.Contains(p.Proposal.Status, "EXPIRED") {
				return fmt.Errorf("proposal %s", p.Proposal.Status)
			}
		}
		code, body, err = do(http.MethodPost, coord+"/proposals/"+p.Proposal.ID+"/enact", `{}`)
		if err := answer("enact", code, body, err); err != nil {
			return err
		}
		return nil
	}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		firstErr  error
	)
	work := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t0 := time.Now()
				err := decide(i)
				mu.Lock()
				latencies = append(latencies, time.Since(t0))
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
				}
				mu.Unlock()
			}
		}()
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	if firstErr != nil {
		// Figures over failed decisions would mean nothing: the benchmark fails.
		b.Fatalf("%d of %d decisions failed; first: %v", errs, b.N, firstErr)
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	pct := func(p float64) float64 { return float64(latencies[int(p*float64(len(latencies)-1))].Nanoseconds()) }
	rest, commit := restFloor(b, f, do), commitFloor(b, f)
	fl := rest + commit
	b.ReportMetric(rest/1e6, "rest-ms")
	b.ReportMetric(commit/1e6, "commit-ms")
	b.ReportMetric(pct(0.50)/1e6, "p50-ms")
	b.ReportMetric(pct(0.99)/1e6, "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "decisions/s")
	// CPU per decision is steadier than throughput on a shared machine: it is what the
	// whole process (fabric and clients) spent, whoever else was running (not counting
	// the PostgreSQL server's own processes).
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/decision")
	b.ReportMetric(fl/1e6, "floor-ms")
	b.ReportMetric(pct(0.50)/fl, "p50-x-floor")
}

// floorSamples is how many round trips each floor is the median of.
const floorSamples = 200

// restFloor is the median time of one REST round trip to the coordinator
// (GET /health: the HTTP server and the fabric's middleware, no decision work), on the
// fabric under test, measured after the run.
func restFloor(b *testing.B, f *fabrictest.Fabric, do func(method, url, body string) (int, []byte, error)) float64 {
	url := f.URL(fabric.Coordinator) + "/health"
	return median(b, func() error {
		code, body, err := do(http.MethodGet, url, "")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("health: %d %s", code, body)
		}
		return err
	})
}

// commitFloor is the median time of one durable commit on the fabric's store: an
// unconditional write of one simulated world row, in a tenant no decision uses.
func commitFloor(b *testing.B, f *fabrictest.Fabric) float64 {
	i := 0
	return median(b, func() error {
		i++
		_, err := f.Store().WorldStates().Put(context.Background(), &store.WorldState{TenantID: "bench-floor", Region: "floor", Target: "floor",
			State: []byte(fmt.Sprintf(`{"n":%d}`, i))}, -1)
		return err
	})
}

func median(b *testing.B, op func() error) float64 {
	ds := make([]float64, 0, floorSamples)
	for range floorSamples {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, float64(time.Since(t0).Nanoseconds()))
	}
	sort.Float64s(ds)
	return ds[len(ds)/2]
}

// processCPU is the user and system CPU time this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
