// rollout.go holds canary rollouts: waves enacted through the coordinator
// (EnactCanaryStage), judged with internal/judge on metrics from a
// metricsource.SeriesSource, then promoted, held or rolled back (RollbackCanaryRun);
// the emergency stop (StopCanary). The run's record in canary_runs is updated after
// every step, as a compare-and-swap on its version; every verdict is an audit entry
// through the decision auditor's contract (the coordinator audits the waves it makes).

package canary

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/judge"
	"github.com/decision-fabric/fabric/internal/store"
)

// Rollout run states.
const (
	statePromoted   = "PROMOTED"
	stateHeld       = "HELD"
	stateRolledBack = "ROLLED_BACK"
	stateStopped    = "STOPPED"
	kindCanary      = "canary"
)

// Stage states.
const (
	stagePending    = "PENDING"
	stageEnacted    = "ENACTED"
	stagePromoted   = "PROMOTED"
	stageHeld       = "HELD"
	stageFailed     = "FAILED"
	stageRolledBack = "ROLLED_BACK"
)

// MaxStopReason bounds a stop's reason (characters).
const MaxStopReason = 1000

// DefaultJudgeConfig is what a wave is judged on unless Deps.Judge says otherwise:
// p99 latency must not increase, the error rate must not increase (critical: a
// significant increase fails the wave on its own), throughput must not decrease; a
// metric without data is never a pass.
func DefaultJudgeConfig() judge.Config {
	return judge.Config{Metrics: []judge.Metric{
		{Name: "latency_p99", Group: "latency", Direction: judge.Increase, NodataPolicy: judge.NodataFail},
		{Name: "error_rate", Group: "errors", Direction: judge.Increase, Critical: true, NodataPolicy: judge.NodataFail},
		{Name: "throughput", Group: "throughput", Direction: judge.Decrease, NodataPolicy: judge.NodataFail},
	}}
}

// waves splits regions: the first, then the rest.
func waves(regions []string) (stages []*canaryv1.CanaryStage) {
	first, rest := regions[:1], regions[1:]
	return []*canaryv1.CanaryStage{
		{Number: 1, Regions: first, BaselineRegions: rest, State: stagePending},
		// The last wave's baseline is the wave already promoted: nothing runs the old
		// change any more.
		{Number: 2, Regions: rest, BaselineRegions: first, State: stagePending},
	}
}

// startRollout enacts the first wave now (a refusal stores nothing) and drives the
// rest in the background.
func (s *Service) startRollout(ctx context.Context, tenant, proposalID string) (*canaryv1.CanaryRun, error) {
	peer := s.deps.As(ctx, tenant)
	got, err := s.deps.Coordinator.GetProposal(peer, &coordinatorv1.GetProposalRequest{Id: proposalID})
	if err != nil {
		return nil, peerError("read the proposal", err)
	}
	p := got.GetProposal()
	if p.GetTenantId() != tenant {
		return nil, status.Errorf(codes.NotFound, "proposal %s not found", proposalID)
	}
	m := p.GetAgreedManifest()
	if m == nil {
		m = p.GetManifest()
	}
	if len(m.GetRegions()) < 2 {
		return nil, status.Errorf(codes.FailedPrecondition, "a canary needs at least two regions, one to change and one to compare with; proposal %s names %d", proposalID, len(m.GetRegions()))
	}
	start := s.deps.Now().UTC()
	run := &canaryv1.CanaryRun{
		Id: ulid.MustNew(ulid.Timestamp(start), ulid.DefaultEntropy()).String(), ProposalId: proposalID, TenantId: tenant,
		State: stateRunning, StartedAt: timestamppb.New(start), Stages: waves(m.GetRegions()), PreStateSha256: p.GetPreStateSha256(),
	}
	if pr := auth.FromContext(ctx); pr != nil {
		run.CreatedBy = pr.Actor()
	}
	if err := s.enactStage(peer, run, run.GetStages()[0]); err != nil {
		return nil, stageError(err)
	}
	if err := s.save(ctx, run); err != nil {
		// Nothing records the wave: undo it.
		if _, rerr := s.deps.Coordinator.RollbackCanaryRun(s.deps.As(context.WithoutCancel(ctx), tenant),
			&coordinatorv1.RollbackCanaryRunRequest{Id: proposalID, RunId: run.GetId(), Reason: "the run could not be stored"}); rerr != nil {
			s.deps.Logger.ErrorContext(ctx, "canary wave enacted, run not stored, rollback failed", "proposal_id", proposalID, "run_id", run.GetId(), "error", rerr)
		}
		return nil, err
	}
	s.metrics.steps.WithLabelValues("wave", stageEnacted).Inc()
	s.launch(tenant, run.GetId(), run.GetCreatedBy())
	return run, nil
}

// stageError is what the caller of RunCanary hears when the first wave is refused.
func stageError(err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.FailedPrecondition, codes.InvalidArgument, codes.NotFound, codes.Aborted:
		return status.Error(st.Code(), st.Message())
	}
	return peerError("enact the first wave", err)
}

// enactStage makes one wave through the coordinator and records it in the run.
func (s *Service) enactStage(ctx context.Context, run *canaryv1.CanaryRun, st *canaryv1.CanaryStage) error {
	resp, err := s.deps.Coordinator.EnactCanaryStage(ctx, &coordinatorv1.EnactCanaryStageRequest{
		Id: run.GetProposalId(), RunId: run.GetId(), Stage: st.GetNumber(), Regions: st.GetRegions()})
	if err != nil {
		return err
	}
	st.State, st.EnactedAt = stageEnacted, timestamppb.New(s.deps.Now().UTC())
	st.PreStateSha256, st.PostStateSha256 = resp.GetStagePreStateSha256(), resp.GetStagePostStateSha256()
	return nil
}

// Resume drives again the rollouts left RUNNING whose lease has ended (a previous
// process, or a replica that stopped; their waves and verdicts so far are in the run's
// record). Call it once at start: it goes on looking for such rollouts every third of
// the lease until Close, so that a replica takes over those of another that stopped.
func (s *Service) Resume(ctx context.Context) error {
	if err := s.resume(ctx); err != nil {
		return err
	}
	s.watchOnce.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for sleep(s.base, s.deps.Lease/3) {
				if err := s.resume(s.base); err != nil && s.base.Err() == nil {
					s.deps.Logger.Warn("canary: look for rollouts to take over", "error", err)
				}
			}
		}()
	})
	return nil
}

// resume launches the RUNNING rollouts this process does not drive; launch takes
// those whose lease has ended and leaves the others to their drivers.
func (s *Service) resume(ctx context.Context) error {
	runs, err := s.deps.Store.CanaryRuns().ListRunning(ctx, store.MaxListLimit)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.DryRun {
			continue
		}
		s.mu.Lock()
		_, driving := s.active[r.ID]
		s.mu.Unlock()
		if !driving {
			s.launch(r.TenantID, r.ID, r.CreatedBy)
		}
	}
	return nil
}

// lease takes or renews this process's lease on run id: false when another process
// drives it (or it is no longer RUNNING).
func (s *Service) lease(ctx context.Context, tenant, id string) (bool, error) {
	now := s.deps.Now()
	return s.deps.Store.CanaryRuns().Lease(context.WithoutCancel(ctx), tenant, id, s.owner, now, now.Add(s.deps.Lease))
}

// launch drives run id in the background until it ends, is held, or is stopped, as
// long as this process holds its lease: a rollout another process drives is left to
// it, and losing the lease (the store unreachable for most of it) stops the driving.
func (s *Service) launch(tenant, id, actor string) {
	ctx, cancel := context.WithCancel(s.base)
	done := make(chan struct{})
	s.mu.Lock()
	if _, driving := s.active[id]; driving {
		s.mu.Unlock()
		cancel()
		return
	}
	s.active[id] = activeRun{cancel: cancel, done: done}
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.active, id)
		s.mu.Unlock()
		cancel()
	}
	// The lease is taken before launch returns (a new run's before RunCanary answers).
	if held, err := s.lease(ctx, tenant, id); err != nil || !held {
		if err != nil {
			s.deps.Logger.Warn("canary: lease a rollout", "run_id", id, "tenant_id", tenant, "error", err)
		}
		forget()
		close(done)
		return // another process drives it, or it ended
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		defer forget()
		s.deps.Logger.Info("canary run driven", "run_id", id, "tenant_id", tenant, "owner", s.owner)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.renew(ctx, cancel, tenant, id)
		}()
		// A peer that is not reachable yet (a resumed run at start, a restarting
		// coordinator) is waited for, with a growing delay; any other error leaves the
		// run as stored (a stop still rolls it back).
		wait := 200 * time.Millisecond
		for {
			err := s.drive(ctx, tenant, id, actor)
			if err == nil || ctx.Err() != nil {
				return
			}
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
				if !sleep(ctx, wait) {
					return
				}
				wait = min(2*wait, 5*time.Second)
				continue
			}
			s.deps.Logger.Error("canary run stopped on an error; stop it to roll it back", "run_id", id, "tenant_id", tenant, "error", err)
			return
		}
	}()
}

// renew renews the lease of the rollout ctx drives every third of the lease, and
// cancels the driving when it is lost (another process took it over after the store
// was out of reach for the rest of the lease) or when it ends.
func (s *Service) renew(ctx context.Context, cancel context.CancelFunc, tenant, id string) {
	for sleep(ctx, s.deps.Lease/3) {
		held, err := s.lease(ctx, tenant, id)
		if err == nil && !held {
			s.deps.Logger.Warn("canary: lease of a rollout lost or ended; this process stops driving it", "run_id", id, "tenant_id", tenant)
			cancel()
			return
		}
		if err != nil {
			s.deps.Logger.Warn("canary: renew a rollout's lease", "run_id", id, "tenant_id", tenant, "error", err)
		}
	}
}

// drive judges the run's enacted wave, acts on the verdict, and goes on until the run
// is no longer RUNNING.
func (s *Service) drive(ctx context.Context, tenant, id, actor string) error {
	peer := s.deps.As(ctx, tenant)
	for {
		r, run, err := s.load(ctx, tenant, id)
		if err != nil {
			return err
		}
		if run.GetState() != stateRunning {
			return nil
		}
		st := current(run)
		if st == nil { // every wave promoted
			return s.finish(ctx, peer, r, run, actor)
		}
		if st.GetState() == stagePending {
			// The lease is checked again right before a wave: no wave is made by a
			// process that lost the run to another.
			held, err := s.lease(ctx, tenant, id)
			if err != nil {
				return err
			}
			if !held {
				s.deps.Logger.Warn("canary: a rollout is driven by another process now; this one stops", "run_id", id, "tenant_id", tenant)
				return nil
			}
			if err := s.enactStage(peer, run, st); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.rollbackRun(peer, run, stateRolledBack, fmt.Sprintf("wave %d could not be enacted: %s", st.GetNumber(), status.Convert(err).Message()))
				return s.persist(ctx, r, run, actor, "canary.rolled_back")
			}
			s.metrics.steps.WithLabelValues("wave", stageEnacted).Inc()
			if err := s.persist(ctx, r, run, actor, ""); err != nil {
				return err
			}
			continue
		}
		if !sleep(ctx, s.deps.Settle) {
			return ctx.Err()
		}
		got, err := s.deps.Coordinator.GetProposal(peer, &coordinatorv1.GetProposalRequest{Id: run.GetProposalId()})
		if err != nil {
			return err
		}
		m := got.GetProposal().GetAgreedManifest()
		if m == nil {
			m = got.GetProposal().GetManifest()
		}
		s.judgeStage(ctx, tenant, m.GetTarget(), st)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.metrics.verdicts.WithLabelValues(orNone(st.GetVerdict())).Inc()
		s.metrics.score.Observe(st.GetScore())
		event := ""
		switch st.GetState() {
		case stagePromoted:
			event = "canary.wave_promoted"
		case stageHeld:
			run.State, run.Reason = stateHeld, fmt.Sprintf("wave %d held for a human: %s", st.GetNumber(), st.GetReason())
			event = "canary.held"
		case stageFailed:
			s.rollbackRun(peer, run, stateRolledBack, fmt.Sprintf("wave %d failed its judgement: %s", st.GetNumber(), st.GetReason()))
			event = "canary.rolled_back"
		}
		if err := s.persist(ctx, r, run, actor, event); err != nil {
			return err
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "NONE"
	}
	return s
}

// current is the first wave not promoted yet (nil when every wave is).
func current(run *canaryv1.CanaryRun) *canaryv1.CanaryStage {
	for _, st := range run.GetStages() {
		if st.GetState() != stagePromoted {
			return st
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// judgeStage compares the wave's metrics with its baseline's and sets the wave's
// verdict and state: PROMOTED on PASS, HELD on MARGINAL or missing data (never
// promoted), FAILED on FAIL.
func (s *Service) judgeStage(ctx context.Context, tenant, target string, st *canaryv1.CanaryStage) {
	st.JudgedAt = timestamppb.New(s.deps.Now().UTC())
	cfg := s.deps.Judge
	if own, ok := s.deps.TenantJudge[tenant]; ok {
		cfg = own
	}
	data := map[string]judge.Series{}
	var missing []string
	for _, m := range cfg.Metrics {
		c, err := s.deps.Metrics.Series(ctx, tenant, target, st.GetRegions(), m.Name, s.deps.Window, s.deps.Step)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: the canary's metrics cannot be read: %v", m.Name, err))
			continue
		}
		b, err := s.deps.Metrics.Series(ctx, tenant, target, st.GetBaselineRegions(), m.Name, s.deps.Window, s.deps.Step)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: the baseline's metrics cannot be read: %v", m.Name, err))
			continue
		}
		if finite(c) == 0 {
			missing = append(missing, fmt.Sprintf("%s: no canary data in %s", m.Name, strings.Join(st.GetRegions(), ", ")))
		}
		if finite(b) == 0 {
			missing = append(missing, fmt.Sprintf("%s: no baseline data in %s", m.Name, strings.Join(st.GetBaselineRegions(), ", ")))
		}
		data[m.Name] = judge.Series{Baseline: b, Canary: c}
	}
	if len(missing) > 0 {
		st.State, st.Reason = stageHeld, "missing data: "+strings.Join(missing, "; ")
		return
	}
	res, err := judge.Judge(cfg, data)
	if err != nil {
		st.State, st.Reason = stageHeld, "the judge cannot decide: "+err.Error()
		return
	}
	st.Verdict, st.Score, st.Reason = string(res.Verdict), res.Score, res.Reason
	for i, mr := range res.Metrics {
		st.Metrics = append(st.Metrics, &canaryv1.MetricJudgement{Name: mr.Name, Classification: string(mr.Classification),
			Reason: mr.Reason, Critical: mr.Critical, BaselineMean: mr.BaselineMean, CanaryMean: mr.CanaryMean, Ratio: mr.Ratio,
			PValue: mr.PValue, LowerCi: mr.LowerCI, UpperCi: mr.UpperCI, Shift: mr.Shift, Tolerance: mr.Tolerance,
			Confidence: mr.Confidence, BaselineN: int32(mr.BaselineN), CanaryN: int32(mr.CanaryN), Direction: direction(cfg.Metrics[i].Direction)})
		if mr.Classification == judge.Nodata || mr.Classification == judge.NodataFailMetric {
			missing = append(missing, mr.Name+": "+mr.Reason)
		}
	}
	switch {
	case len(missing) > 0:
		st.State, st.Reason = stageHeld, "missing data: "+strings.Join(missing, "; ")
	case res.Verdict == judge.VerdictPass:
		st.State = stagePromoted
	case res.Verdict == judge.VerdictMarginal:
		st.State = stageHeld
	default:
		st.State = stageFailed
	}
}

func direction(d judge.Direction) string {
	if d == "" {
		return string(judge.Either)
	}
	return string(d)
}

func finite(xs []float64) int {
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			n++
		}
	}
	return n
}

// rollbackRun undoes every wave through the coordinator and ends the run in state (or
// FAILED when the rollback fails: the reason says so).
func (s *Service) rollbackRun(peer context.Context, run *canaryv1.CanaryRun, state, reason string) {
	resp, err := s.deps.Coordinator.RollbackCanaryRun(peer, &coordinatorv1.RollbackCanaryRunRequest{
		Id: run.GetProposalId(), RunId: run.GetId(), Reason: truncate(reason, MaxStopReason)})
	run.FinishedAt = timestamppb.New(s.deps.Now().UTC())
	if err != nil {
		run.State, run.Reason = stateFailed, reason+"; the rollback failed: "+status.Convert(err).Message()
		return
	}
	for _, st := range run.GetStages() {
		if st.GetState() != stagePending {
			st.State = stageRolledBack
		}
	}
	run.State, run.Reason, run.FinalStateSha256 = state, reason, resp.GetRestoredStateSha256()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// finish records the promoted run as the proposal's enactment.
func (s *Service) finish(ctx context.Context, peer context.Context, r *store.CanaryRun, run *canaryv1.CanaryRun, actor string) error {
	resp, err := s.deps.Coordinator.CompleteCanaryRun(peer, &coordinatorv1.CompleteCanaryRunRequest{Id: run.GetProposalId(), RunId: run.GetId()})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		run.State, run.Reason = stateHeld, "every wave passed but the enactment could not be recorded: "+status.Convert(err).Message()
		return s.persist(ctx, r, run, actor, "canary.held")
	}
	run.State, run.FinalStateSha256, run.FinishedAt = statePromoted, resp.GetPostStateSha256(), timestamppb.New(s.deps.Now().UTC())
	return s.persist(ctx, r, run, actor, "canary.promoted")
}

// load reads a run.
func (s *Service) load(ctx context.Context, tenant, id string) (*store.CanaryRun, *canaryv1.CanaryRun, error) {
	r, err := s.deps.Store.CanaryRuns().Get(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	run, err := decodeRun(r)
	return r, run, err
}

// persist writes run over r (compare-and-swap), then audits event ("" for none).
func (s *Service) persist(ctx context.Context, r *store.CanaryRun, run *canaryv1.CanaryRun, actor, event string) error {
	raw, err := runJSON.Marshal(run)
	if err != nil {
		return fmt.Errorf("canary: encode run: %w", err)
	}
	if _, err := s.deps.Store.CanaryRuns().Update(context.WithoutCancel(ctx), r.TenantID, r.ID, r.Version, run.GetState(), raw); err != nil {
		return err
	}
	if run.GetState() != stateRunning {
		kind := kindCanary
		s.metrics.runs.WithLabelValues(kind, run.GetState()).Inc()
		s.metrics.duration.WithLabelValues(kind).Observe(s.deps.Now().Sub(run.GetStartedAt().AsTime()).Seconds())
	}
	if event != "" {
		s.audit(context.WithoutCancel(ctx), run, actor, event)
	}
	return nil
}

// audit appends the run's latest judgement or outcome to the audit log through the
// decision auditor's contract (idempotent per run, wave and event).
func (s *Service) audit(ctx context.Context, run *canaryv1.CanaryRun, actor, event string) {
	payload := map[string]any{"run_id": run.GetId(), "state": run.GetState(), "reason": run.GetReason(),
		"pre_state_sha256": run.GetPreStateSha256(), "final_state_sha256": run.GetFinalStateSha256()}
	stage := int32(0)
	for _, st := range run.GetStages() {
		if st.GetJudgedAt() != nil {
			stage = st.GetNumber()
			payload["stage"] = float64(st.GetNumber())
			payload["verdict"] = st.GetVerdict()
			payload["score"] = st.GetScore()
			payload["stage_reason"] = st.GetReason()
		}
	}
	body, err := structpb.NewStruct(payload)
	if err == nil {
		_, err = s.deps.Auditor.AppendEntry(s.deps.As(ctx, run.GetTenantId()), &auditorv1.AppendEntryRequest{
			ProposalId: run.GetProposalId(), Event: event, Payload: body, OnBehalfOf: actor,
			IdempotencyKey: fmt.Sprintf("%s:canary:%s:%d:%s", run.GetProposalId(), run.GetId(), stage, event)})
	}
	if err != nil {
		s.deps.Logger.ErrorContext(ctx, "canary audit entry not written", "run_id", run.GetId(), "event", event, "error", err)
	}
}

// StopCanary implements the RPC: the emergency stop.
func (s *Service) StopCanary(ctx context.Context, req *canaryv1.StopCanaryRequest) (*canaryv1.StopCanaryResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	r, run, err := s.load(ctx, tenant, req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "canary run %s not found", req.GetId())
	}
	if err != nil {
		return nil, err
	}
	if run.GetDryRun() {
		return nil, status.Errorf(codes.FailedPrecondition, "run %s is a dry run: it changed nothing and has nothing to stop", run.GetId())
	}
	if run.GetState() != stateRunning && run.GetState() != stateHeld {
		return &canaryv1.StopCanaryResponse{Run: run}, nil
	}
	// Stop this process's runner first, so that no wave is enacted behind the rollback.
	s.mu.Lock()
	a, ok := s.active[run.GetId()]
	s.mu.Unlock()
	if ok {
		a.cancel()
		<-a.done
		if r, run, err = s.load(ctx, tenant, req.GetId()); err != nil {
			return nil, err
		}
		if run.GetState() != stateRunning && run.GetState() != stateHeld {
			return &canaryv1.StopCanaryResponse{Run: run}, nil
		}
	}
	reason := "emergency stop"
	if req.GetReason() != "" {
		reason += ": " + req.GetReason()
	}
	if pr := auth.FromContext(ctx); pr != nil {
		reason += " (by " + pr.Actor() + ")"
	}
	was := run.GetState()
	s.rollbackRun(s.deps.As(ctx, tenant), run, stateStopped, reason)
	if run.GetState() == stateFailed {
		if ok && was == stateRunning {
			s.launch(tenant, r.ID, r.CreatedBy) // the run goes on as it was
		}
		return nil, status.Errorf(codes.Unavailable, "%s; retry the stop", run.GetReason())
	}
	actor := ""
	if pr := auth.FromContext(ctx); pr != nil {
		actor = pr.Actor()
	}
	if err := s.persist(ctx, r, run, actor, "canary.stopped"); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, status.Errorf(codes.Aborted, "run %s changed while stopping; the rollback was made, retry the stop", run.GetId())
		}
		return nil, err
	}
	return &canaryv1.StopCanaryResponse{Run: run}, nil
}
