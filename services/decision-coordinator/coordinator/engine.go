package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/store"
)

// The lifecycle engine.
//
// A proposal moves through SUBMITTED → NEGOTIATING → AGREED → SCORED (and on to
// PENDING_APPROVAL, or REJECTED / EXPIRED) on its own, in the background: reads never
// move it. Each coordinator process runs one engine. The engine works on proposals it
// holds a lease on (columns of the proposal, see store.ProposalStore.ClaimWork):
//
//   - a proposal submitted to this process is leased to it in the submission's own
//     commit and driven at once, so the common path costs no extra commit;
//   - every sweep (EngineConfig.Sweep) claims proposals in the engine's states whose
//     lease has ended (a coordinator that crashed or stopped) or that were never leased;
//     on Postgres the claim skips rows another claimer holds (FOR UPDATE SKIP LOCKED),
//     on SQLite the single writer serialises claimers;
//   - the holder renews its leases every third of EngineConfig.Lease, in one statement,
//     and releases them when it stops, so another process takes over at once.
//
// Each move is a compare-and-swap on the proposal's version, so even two engines that
// both believe they hold a proposal (a lease that ended during a long pause) cannot
// both move it: one move wins, the other is discarded. The negotiation is started with
// the id recorded at submission, so a retried start finds the same negotiation, and it
// is never started after the proposal's deadline (P6): past it, the proposal ends
// EXPIRED with the reason.

// EngineConfig tunes the lifecycle engine.
type EngineConfig struct {
	// Disabled runs no engine: proposals stay where they are (tests of one step).
	Disabled bool
	// Owner names this process in leases; a random, unique name when "".
	Owner string
	// Lease is how long a claim lasts without renewal (default 15s): after a crash,
	// another coordinator takes the proposals over within about this long.
	Lease time.Duration
	// Sweep is how often the engine looks for unclaimed work (default 1s).
	Sweep time.Duration
	// MaxActive bounds the proposals one engine drives at once (default 1024).
	MaxActive int
	// Retry is the first delay before a step that failed is tried again (default
	// 200ms, doubling up to 5s).
	Retry time.Duration
}

func (c EngineConfig) withDefaults() EngineConfig {
	if c.Owner == "" {
		host, _ := os.Hostname()
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.Lease <= 0 {
		c.Lease = 15 * time.Second
	}
	if c.Sweep <= 0 {
		c.Sweep = time.Second
	}
	if c.MaxActive <= 0 {
		c.MaxActive = 1024
	}
	if c.Retry <= 0 {
		c.Retry = 200 * time.Millisecond
	}
	return c
}

// engineStates are the states the engine moves proposals out of on its own.
// A proposal waiting for approval is held too: its driver asks the hil-gateway to
// notify the approvers and ends it EXPIRED at the approval deadline.
var engineStates = []string{stSubmitted, stNegotiating, stAgreed, stPendingApproval}

func inEngineState(status string) bool { return slices.Contains(engineStates, status) }

// engine drives proposals through their lifecycle in the background.
type engine struct {
	s   *Service
	cfg EngineConfig

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	active map[string]bool // proposals driven by this process now
	closed bool
}

func newEngine(s *Service, cfg EngineConfig) *engine {
	cfg = cfg.withDefaults()
	// Background work is labelled for commit observers (store.Observe): the engine's
	// commits are the decision's own, unlike the audit relay's.
	base, cancel := context.WithCancel(store.WithCommitLabel(context.Background(), "engine"))
	return &engine{s: s, cfg: cfg, base: base, cancel: cancel, active: map[string]bool{}}
}

// start runs the sweeper: a first claim at once (work left by a previous process),
// then every Sweep; and the lease renewal.
func (e *engine) start() {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.loop()
	}()
}

func (e *engine) loop() {
	sweep := time.NewTicker(e.cfg.Sweep)
	defer sweep.Stop()
	renew := time.NewTicker(e.cfg.Lease / 3)
	defer renew.Stop()
	e.claim()
	for {
		select {
		case <-e.base.Done():
			return
		case <-sweep.C:
			e.claim()
		case <-renew.C:
			e.renew()
		}
	}
}

// claim takes unclaimed work, as much as this engine has room for.
func (e *engine) claim() {
	e.mu.Lock()
	room := e.cfg.MaxActive - len(e.active)
	e.mu.Unlock()
	if room <= 0 {
		return
	}
	now := e.s.deps.Now()
	ctx, cancel := context.WithTimeout(store.WithCommitLabel(e.base, LeaseCommitLabel), 10*time.Second)
	defer cancel()
	ps, err := e.s.deps.Store.Proposals().ClaimWork(ctx, e.cfg.Owner, engineStates, now, now.Add(e.cfg.Lease), min(room, 256))
	if err != nil {
		if e.base.Err() == nil {
			e.s.deps.Logger.WarnContext(ctx, "lifecycle engine: claim", "error", err)
		}
		return
	}
	for _, p := range ps {
		e.s.metrics.engineClaimed.Inc()
		e.drive(p)
	}
}

// LeaseCommitLabel labels the engine's lease claims (every sweep, most of them taking
// nothing) and renewals for commit observers (store.Observe): they move no proposal,
// only its lease_owner and lease_until, so a test that proves a read wrote nothing may
// leave them out. What the engine does with a claimed proposal is labelled "engine".
const LeaseCommitLabel = "engine-lease"

// renew extends this engine's leases.
func (e *engine) renew() {
	ctx, cancel := context.WithTimeout(store.WithCommitLabel(e.base, LeaseCommitLabel), 10*time.Second)
	defer cancel()
	if _, err := e.s.deps.Store.Proposals().RenewLeases(ctx, e.cfg.Owner, engineStates, e.s.deps.Now().Add(e.cfg.Lease)); err != nil && e.base.Err() == nil {
		e.s.deps.Logger.WarnContext(ctx, "lifecycle engine: renew leases", "error", err)
	}
}

// leaseUntil is the end of a lease taken now (a submission's).
func (e *engine) leaseUntil() time.Time { return e.s.deps.Now().Add(e.cfg.Lease) }

// drive moves p as far as it goes, in its own goroutine, unless this process already
// drives it.
func (e *engine) drive(p *store.Proposal) {
	if !inEngineState(p.Status) {
		return
	}
	e.mu.Lock()
	if e.closed || e.active[p.ID] {
		e.mu.Unlock()
		return
	}
	e.active[p.ID] = true
	e.s.metrics.engineActive.Set(float64(len(e.active)))
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.active, p.ID)
			e.s.metrics.engineActive.Set(float64(len(e.active)))
			e.mu.Unlock()
		}()
		e.run(p)
	}()
}

// run is one proposal's driver: step after step until it leaves the engine's states,
// another process moved it, or the engine stops. A failed step is retried with a
// growing delay; the deadline is checked again on every step.
func (e *engine) run(p *store.Proposal) {
	delay := e.cfg.Retry
	for inEngineState(p.Status) {
		if e.base.Err() != nil {
			return
		}
		next, err := e.s.step(onBehalfOf(e.base, p), p)
		switch {
		case err == nil && next != nil:
			p, delay = next, e.cfg.Retry
			continue
		case err != nil && isConflict(err) && e.movedOn(&p):
			// Moved by someone else (another engine, an enactment): go on from there.
			continue
		case err != nil:
			e.s.metrics.engineRetries.Inc()
			if e.base.Err() == nil {
				e.s.deps.Logger.WarnContext(e.base, "lifecycle engine: step failed; retrying", "proposal_id", p.ID, "status", p.Status, "retry_in", delay, "error", err)
			}
		}
		select {
		case <-e.base.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// movedOn re-reads *p and reports whether it changed since (another process moved it);
// a conflict on an unchanged proposal is an ordinary failure, retried with a delay.
func (e *engine) movedOn(p **store.Proposal) bool {
	fresh, err := e.s.deps.Store.Proposals().Get(e.base, (*p).TenantID, (*p).ID)
	if err != nil || fresh.Version == (*p).Version {
		return false
	}
	*p = fresh
	return true
}

// close stops the engine, waits for its drivers and releases its leases so another
// coordinator takes the work over at once.
func (e *engine) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.s.deps.Store.Proposals().ReleaseLeases(ctx, e.cfg.Owner); err != nil {
		e.s.deps.Logger.WarnContext(ctx, "lifecycle engine: release leases", "error", err)
	}
}

// changes wakes long polls when a proposal this process moved changes. Moves made by
// other processes are seen by the poll's periodic re-read.
type changes struct {
	mu sync.Mutex
	m  map[string]*watchers
}

// watchers are the long polls waiting on one proposal.
type watchers struct {
	ch chan struct{}
	n  int
}

// watch returns a channel closed at id's next change, and release, which the caller
// must call when it stops waiting: the last release of a proposal nothing changed
// (another process moved it, or the poll timed out) forgets it, so the map holds only
// the proposals being waited on.
func (c *changes) watch(id string) (changed <-chan struct{}, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*watchers{}
	}
	w, ok := c.m[id]
	if !ok {
		w = &watchers{ch: make(chan struct{})}
		c.m[id] = w
	}
	w.n++
	return w.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if w.n--; w.n == 0 && c.m[id] == w {
			delete(c.m, id)
		}
	}
}

// notify wakes id's watchers.
func (c *changes) notify(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.m[id]; ok {
		close(w.ch)
		delete(c.m, id)
	}
}

// waiting is how many proposals have long polls waiting (tests).
func (c *changes) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// isConflict: the proposal moved under the step (a compare-and-swap lost, or a move
// no longer legal from its new status).
func isConflict(err error) bool {
	switch status.Code(err) {
	case codes.Aborted, codes.FailedPrecondition:
		return true
	}
	return false
}
