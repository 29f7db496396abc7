// canary.go holds the coordinator's side of canary rollouts (the sim-canary drives
// them): one stage of the change made in some regions (EnactCanaryStage), every region
// put back into the recorded pre-state (RollbackCanaryRun), and a run whose every stage
// was promoted recorded as the proposal's enactment (CompleteCanaryRun). A stage may
// be enacted only when the proposal may be (readyToEnact: approvals are not bypassed).

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// Audit events of canary runs.
const (
	eventCanaryStage      = "canary.stage_enacted"
	eventCanaryRolledBack = "canary.rolled_back"
)

// maxCanaryReason bounds a rollback's reason (characters).
const maxCanaryReason = 1000

func validateRunRef(id, runID string) error {
	if err := validateID(id); err != nil {
		return err
	}
	if err := validateID(runID); err != nil {
		return invalid("run_id: want a ULID")
	}
	return nil
}

func validateCanaryStage(req any) error {
	r := req.(*coordinatorv1.EnactCanaryStageRequest)
	if err := validateRunRef(r.GetId(), r.GetRunId()); err != nil {
		return err
	}
	if r.GetStage() < 1 || r.GetStage() > 100 {
		return invalid("stage %d: want 1-100", r.GetStage())
	}
	if n := len(r.GetRegions()); n == 0 || n > 100 {
		return invalid("regions: want 1-100, got %d", n)
	}
	return nil
}

func validateCanaryRollback(req any) error {
	r := req.(*coordinatorv1.RollbackCanaryRunRequest)
	if len([]rune(r.GetReason())) > maxCanaryReason {
		return invalid("reason: at most %d characters", maxCanaryReason)
	}
	return validateRunRef(r.GetId(), r.GetRunId())
}

func validateCanaryComplete(req any) error {
	r := req.(*coordinatorv1.CompleteCanaryRunRequest)
	return validateRunRef(r.GetId(), r.GetRunId())
}

// readyToEnact is what EnactProposal requires of a proposal before a real change, past
// its state and consensus bundle: P3's approvals and dry run, and no approval pending.
func (s *Service) readyToEnact(p *store.Proposal, d *coordinatorv1.Proposal) error {
	if missing := s.missingForEnactment(p, d); len(missing) > 0 {
		return status.Errorf(codes.FailedPrecondition, "enactment of %s-impact proposal %s refused; missing: %s", p.Impact, p.ID, strings.Join(missing, "; "))
	}
	if p.Status == stPendingApproval {
		return status.Errorf(codes.FailedPrecondition, "proposal %s is waiting for approval (P3)", p.ID)
	}
	return nil
}

// enactableProposal is the caller's proposal when it may be enacted now, with its
// decision record and change.
func (s *Service) enactableProposal(ctx context.Context, id string) (*store.Proposal, world.Change, error) {
	p, err := s.callersProposal(ctx, id)
	if err != nil {
		return nil, world.Change{}, err
	}
	d, c, _, err := decisionChange(p)
	if err != nil {
		return nil, world.Change{}, err
	}
	if err := notReady(p, d); err != nil {
		return nil, world.Change{}, err
	}
	if err := s.verifyConsensus(p, d); err != nil {
		return nil, world.Change{}, err
	}
	if err := s.readyToEnact(p, d); err != nil {
		return nil, world.Change{}, err
	}
	return p, c, nil
}

// preSnapshot is p's recorded pre-state snapshot.
func (s *Service) preSnapshot(ctx context.Context, p *store.Proposal) (world.Snapshot, error) {
	snaps, err := s.deps.Store.Snapshots().List(ctx, p.TenantID, p.ID)
	if err != nil {
		return world.Snapshot{}, storeError(err)
	}
	for _, sn := range snaps {
		if sn.Kind == "pre" {
			return world.Snapshot{JSON: sn.State, SHA256: sn.SHA256}, nil
		}
	}
	return world.Snapshot{}, status.Errorf(codes.FailedPrecondition, "proposal %s has no pre-state snapshot to restore", p.ID)
}

// EnactCanaryStage implements the RPC.
func (s *Service) EnactCanaryStage(ctx context.Context, req *coordinatorv1.EnactCanaryStageRequest) (*coordinatorv1.EnactCanaryStageResponse, error) {
	p, c, err := s.enactableProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	for i, r := range req.GetRegions() {
		if !slices.Contains(c.Regions, r) {
			return nil, status.Errorf(codes.InvalidArgument, "regions[%d] %q is not a region of the proposal (%s)", i, r, strings.Join(c.Regions, ", "))
		}
	}
	pre, err := s.preSnapshot(ctx, p)
	if err != nil {
		return nil, err
	}
	// As EnactProposal does: the exact change is classified again before the world
	// first changes; nothing is enacted above what was classified and approved. "First"
	// is read from the world (every region still at its pre-state), never from the
	// caller's stage number, which a caller could choose to skip the check.
	full, err := s.deps.World.Read(ctx, c.TenantID, c.Target, c.Regions)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the world: %v", err)
	}
	if full.SHA256 == pre.SHA256 {
		d, _, m, err := decisionChange(p)
		if err != nil {
			return nil, err
		}
		if re := s.reclassify(ctx, p, d, m, full, nil, stageEnactment); re != nil {
			return nil, s.holdForApproval(ctx, p, re)
		}
	}
	sc := c
	sc.Regions = slices.Clone(req.GetRegions())
	want, err := world.Project(pre, sc.Regions)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	cur, err := s.deps.World.Read(ctx, sc.TenantID, sc.Target, sc.Regions)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the world: %v", err)
	}
	if cur.SHA256 != want.SHA256 {
		return nil, status.Errorf(codes.FailedPrecondition, "regions %s of %s no longer hold their pre-state (already enacted, or changed since submission)",
			strings.Join(sc.Regions, ", "), sc.Target)
	}
	planned, err := s.deps.World.Plan(ctx, sc)
	if errors.Is(err, world.ErrRejected) {
		return nil, status.Errorf(codes.FailedPrecondition, "dry run of the stage failed: %v", err)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "plan the stage: %v", err)
	}
	event := auditEvent{kind: store.OutboxEntryKind, event: eventCanaryStage,
		key: fmt.Sprintf("%s:canary:%s:stage:%d", p.ID, req.GetRunId(), req.GetStage()),
		payload: map[string]any{"run_id": req.GetRunId(), "stage": req.GetStage(), "regions": anyStrings(sc.Regions),
			"stage_pre_state_sha256": cur.SHA256, "stage_post_state_sha256": planned.SHA256, "pre_state_sha256": p.PreStateSHA256}}
	entries, err := s.outboxEntries(ctx, p.TenantID, p.ID, event)
	if err != nil {
		return nil, err
	}
	var staged []*store.OutboxEntry
	record := func(tx store.Store) (err error) {
		staged, err = stageIn(ctx, tx, entries)
		return err
	}
	applied := false
	if ta, ok := s.deps.World.(world.TxApplier); ok {
		err = s.deps.Store.InTx(ctx, func(tx store.Store) error {
			post, ok, err := ta.ApplyIn(ctx, tx, sc, cur)
			if err != nil || !ok {
				return err
			}
			applied = true
			if post.SHA256 != planned.SHA256 {
				return status.Errorf(codes.Aborted, "the stage would produce state %s, not the planned %s; nothing was applied, retry", short(post.SHA256), short(planned.SHA256))
			}
			return record(tx)
		})
		if errors.Is(err, store.ErrConflict) {
			return nil, changedDuringEnactment(sc)
		}
		if err != nil {
			return nil, storeError(err)
		}
	}
	if !applied {
		if _, err := s.deps.World.Apply(ctx, sc, cur); errors.Is(err, store.ErrConflict) {
			return nil, changedDuringEnactment(sc)
		} else if err != nil {
			return nil, status.Errorf(codes.Unavailable, "apply the stage: %v", err)
		}
		if err := s.deps.Store.InTx(ctx, record); err != nil {
			return nil, s.undoApply(ctx, sc, cur, storeError(err))
		}
	}
	s.deliver(ctx, staged)
	s.deps.Logger.InfoContext(ctx, "canary stage enacted", "proposal_id", p.ID, "tenant_id", p.TenantID, "run_id", req.GetRunId(),
		"stage", req.GetStage(), "regions", sc.Regions)
	return &coordinatorv1.EnactCanaryStageResponse{StagePreStateSha256: cur.SHA256, StagePostStateSha256: planned.SHA256,
		PreStateSha256: p.PreStateSHA256}, nil
}

func anyStrings(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// RollbackCanaryRun implements the RPC.
func (s *Service) RollbackCanaryRun(ctx context.Context, req *coordinatorv1.RollbackCanaryRunRequest) (*coordinatorv1.RollbackCanaryRunResponse, error) {
	p, err := s.callersProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if p.Status == stEnacted || p.Status == stRolledBack {
		return nil, status.Errorf(codes.FailedPrecondition, "proposal %s is %s: roll it back with POST /proposals/%s/rollback", p.ID, p.Status, p.ID)
	}
	pre, err := s.preSnapshot(ctx, p)
	if err != nil {
		return nil, err
	}
	_, c, _, err := decisionChange(p)
	if err != nil {
		return nil, err
	}
	restored, err := s.deps.World.Restore(ctx, c, pre)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "restore the pre-state: %v", err)
	}
	if restored.SHA256 != p.PreStateSHA256 {
		return nil, status.Errorf(codes.Aborted, "restored state hashes to %s, not the pre-state %s", short(restored.SHA256), short(p.PreStateSHA256))
	}
	event := auditEvent{kind: store.OutboxEntryKind, event: eventCanaryRolledBack,
		key: fmt.Sprintf("%s:canary:%s:rolled_back", p.ID, req.GetRunId()),
		payload: map[string]any{"run_id": req.GetRunId(), "reason": req.GetReason(), "pre_state_sha256": p.PreStateSHA256,
			"restored_state_sha256": restored.SHA256}}
	entries, err := s.outboxEntries(ctx, p.TenantID, p.ID, event)
	if err != nil {
		return nil, err
	}
	var staged []*store.OutboxEntry
	if err := s.deps.Store.InTx(ctx, func(tx store.Store) (err error) {
		staged, err = stageIn(ctx, tx, entries)
		return err
	}); err != nil {
		return nil, storeError(err)
	}
	s.deliver(ctx, staged)
	s.deps.Logger.InfoContext(ctx, "canary run rolled back", "proposal_id", p.ID, "tenant_id", p.TenantID, "run_id", req.GetRunId(),
		"pre_state_sha256", restored.SHA256)
	return &coordinatorv1.RollbackCanaryRunResponse{RestoredStateSha256: restored.SHA256, PreStateSha256: p.PreStateSHA256}, nil
}

// CompleteCanaryRun implements the RPC.
func (s *Service) CompleteCanaryRun(ctx context.Context, req *coordinatorv1.CompleteCanaryRunRequest) (*coordinatorv1.CompleteCanaryRunResponse, error) {
	p, c, err := s.enactableProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	pre, err := s.preSnapshot(ctx, p)
	if err != nil {
		return nil, err
	}
	cur, err := s.deps.World.Read(ctx, c.TenantID, c.Target, c.Regions)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the world: %v", err)
	}
	if err := s.checkEnactedFrom(c, pre, cur); err != nil {
		return nil, err
	}
	res := &coordinatorv1.DryRunResult{Passed: true, PreStateSha256: p.PreStateSHA256, PlannedPostStateSha256: cur.SHA256,
		RanAt: timestamppb.New(s.deps.Now()), Detail: "enacted in stages by canary run " + req.GetRunId()}
	next, _, err := s.recordEnactment(ctx, p, res, func(store.Store) (world.Snapshot, error) { return cur, nil })
	if err != nil {
		return nil, err
	}
	out, err := toProto(next)
	if err != nil {
		return nil, err
	}
	return &coordinatorv1.CompleteCanaryRunResponse{Proposal: out, PostStateSha256: cur.SHA256}, nil
}

// checkEnactedFrom checks that the world in state cur is what c makes of pre: exactly,
// when the executor can plan from a past state; else every region changed.
func (s *Service) checkEnactedFrom(c world.Change, pre, cur world.Snapshot) error {
	if pf, ok := s.deps.World.(world.PlannerFrom); ok {
		want, err := pf.PlanFrom(c, pre)
		switch {
		case err == nil && want.SHA256 == cur.SHA256:
			return nil
		case err == nil:
			return status.Errorf(codes.FailedPrecondition, "the state of %s is %s, not the %s the change makes of the pre-state: a stage is missing or the world changed",
				c.Target, short(cur.SHA256), short(want.SHA256))
		case !errors.Is(err, errors.ErrUnsupported):
			return status.Errorf(codes.FailedPrecondition, "plan the change from the pre-state: %v", err)
		}
	}
	for _, r := range c.Regions {
		was, err := world.Project(pre, []string{r})
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		now, err := world.Project(cur, []string{r})
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		if was.SHA256 == now.SHA256 {
			return status.Errorf(codes.FailedPrecondition, "region %s of %s still holds its pre-state: its stage was not enacted", r, c.Target)
		}
	}
	return nil
}
