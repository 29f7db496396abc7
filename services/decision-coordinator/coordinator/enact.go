// enact.go holds what happens after scoring: the change to enact (change,
// decisionChange), what P3
// still requires (missingForEnactment, notReady), dry runs (dryRun, planDryRun,
// dryRunMove), enactment with its reclassification and its record in one transaction
// (enact, holdForApproval, recordEnactment, undoApply), rollback to the pre-state
// snapshot (rollback) and snapshots in responses (snapshotProto).

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/approval"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// change is the executor's view of the manifest to enact: the agreed one when the
// regions countered, else the submitted one.
func change(p *store.Proposal, d *coordinatorv1.Proposal) (world.Change, *typesv1.Manifest, error) {
	m := d.GetAgreedManifest()
	if m == nil {
		var err error
		if m, err = submittedManifest(p); err != nil {
			return world.Change{}, nil, err
		}
	}
	return manifestpkg.Change(p.TenantID, m), m, nil
}

// decisionChange is p's decision record and the change it would enact (change).
func decisionChange(p *store.Proposal) (*coordinatorv1.Proposal, world.Change, *typesv1.Manifest, error) {
	d, err := decision(p)
	if err != nil {
		return nil, world.Change{}, nil, err
	}
	c, m, err := change(p, d)
	if err != nil {
		return nil, world.Change{}, nil, err
	}
	return d, c, m, nil
}

// missingForEnactment lists what P3 still requires before a real enactment.
func (s *Service) missingForEnactment(p *store.Proposal, d *coordinatorv1.Proposal) []string {
	var missing []string
	pol := d.GetPolicy()
	if pol.GetApprovalRequired() || p.Impact == policy.ImpactHigh {
		// The recorded votes are replayed under the tenant's approval rules: only an
		// approval the rules count lets the change through (P3).
		out, err := s.approvalOutcome(p, d)
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("approvals (the approval rules cannot be evaluated: %v; P3)", err))
		case out.Status != approval.Approved:
			missing = append(missing, fmt.Sprintf("approvals (%s; P3)", strings.Join(out.Explanation, "; ")))
		}
		dr := d.GetDryRunResult()
		if !dr.GetPassed() || dr.GetPreStateSha256() != p.PreStateSHA256 {
			missing = append(missing, "a passed dry run (POST /proposals/{id}/enact with {\"dry_run\":true})")
		}
	}
	return missing
}

// notReady explains why a proposal in status st cannot be enacted at all.
func notReady(p *store.Proposal, d *coordinatorv1.Proposal) error {
	switch p.Status {
	case stSubmitted, stNegotiating, stAgreed:
		return status.Errorf(codes.FailedPrecondition, "proposal %s is %s: the regions have not agreed yet (poll GET /proposals/%s)", p.ID, p.Status, p.ID)
	case stRejected, stExpired, stDenied:
		return status.Errorf(codes.FailedPrecondition, "proposal %s was %s and cannot be enacted: %s", p.ID, p.Status, d.GetReason())
	case stEnacted, stRolledBack:
		return status.Errorf(codes.FailedPrecondition, "proposal %s is already %s", p.ID, p.Status)
	}
	return nil
}

// dryRun plans the change against the current state and records the result; status
// moves to DRY_RUN_PASSED/FAILED where the state machine allows it (a proposal waiting
// for approval keeps waiting, with the result recorded for the approvers).
func (s *Service) dryRun(ctx context.Context, p *store.Proposal) (*store.Proposal, world.Snapshot, error) {
	_, c, _, err := decisionChange(p)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	res, pre, err := s.planDryRun(ctx, p, c)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	to, event, edit := dryRunMove(p, res)
	next, err := s.moveAudited(ctx, p, to, event, edit, columns{})
	return next, pre, err
}

// planDryRun plans p's change c against the current state, changing nothing: the
// result a dry run records, and the pre-state it read.
func (s *Service) planDryRun(ctx context.Context, p *store.Proposal, c world.Change) (*coordinatorv1.DryRunResult, world.Snapshot, error) {
	pre, err := s.deps.World.Read(ctx, c.TenantID, c.Target, c.Regions)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	res := &coordinatorv1.DryRunResult{Passed: true, PreStateSha256: pre.SHA256, RanAt: timestamppb.New(s.deps.Now())}
	plan, err := s.deps.World.Plan(ctx, c)
	switch {
	case errors.Is(err, world.ErrRejected):
		res.Passed, res.Detail = false, err.Error()
	case err != nil:
		return nil, world.Snapshot{}, err
	default:
		res.PlannedPostStateSha256 = plan.SHA256
	}
	if pre.SHA256 != p.PreStateSHA256 {
		res.Passed = false
		res.Detail = fmt.Sprintf("the state of %s changed since the proposal was submitted (pre-state %s, now %s); submit a new proposal", c.Target, short(p.PreStateSHA256), short(pre.SHA256))
	}
	return res, pre, nil
}

// dryRunMove is how a dry run's result is recorded: the status it moves p to
// (DRY_RUN_PASSED or _FAILED where the state machine allows it; a proposal waiting
// for approval keeps waiting, with the result recorded for the approvers), its audit
// event, and the edit of the decision record.
func dryRunMove(p *store.Proposal, res *coordinatorv1.DryRunResult) (to, event string, edit func(d *coordinatorv1.Proposal)) {
	to = stDryRunPassed
	if !res.GetPassed() {
		to = stDryRunFailed
	}
	event = transitionEvent(to) // proposal.dry_run_passed or proposal.dry_run_failed
	if p.Status == stPendingApproval {
		to = stPendingApproval
	}
	return to, event, func(d *coordinatorv1.Proposal) {
		d.DryRunResult = res
		if !res.GetPassed() {
			d.Reason = res.GetDetail()
		}
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// enact applies the change: the world must still be in the submitted pre-state and
// the dry run must pass. The passed dry run, the move to ENACTED and the post-state
// snapshot are then recorded in one transaction (a failed dry run is recorded alone,
// and refused).
func (s *Service) enact(ctx context.Context, p *store.Proposal) (*store.Proposal, world.Snapshot, world.Snapshot, error) {
	d, c, m, err := decisionChange(p)
	if err != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, err
	}
	res, pre, err := s.planDryRun(ctx, p, c)
	if err != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, err
	}
	if !res.GetPassed() {
		to, event, edit := dryRunMove(p, res)
		if _, err := s.moveAudited(ctx, p, to, event, edit, columns{}); err != nil {
			return nil, world.Snapshot{}, world.Snapshot{}, err
		}
		return nil, world.Snapshot{}, world.Snapshot{}, status.Errorf(codes.FailedPrecondition, "dry run failed: %s", res.GetDetail())
	}
	// The exact change to apply is classified again: nothing is enacted at an impact
	// above what was classified and approved (a policy changed since, a proposal
	// agreed before agreements were classified).
	if re := s.reclassify(ctx, p, d, m, pre, nil, stageEnactment); re != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, s.holdForApproval(ctx, p, re)
	}
	// A world that lives in the fabric's store (the simulated one) is changed in the
	// transaction that records the enactment: a crash can never leave the change
	// applied without its record. Any other (a tenant's webhook) is changed first and
	// put back when the record cannot be written.
	if ta, ok := s.deps.World.(world.TxApplier); ok {
		var applied bool
		next, post, err := s.recordEnactment(ctx, p, res, func(tx store.Store) (world.Snapshot, error) {
			post, ok, err := ta.ApplyIn(ctx, tx, c, pre)
			applied = ok
			if errors.Is(err, store.ErrConflict) {
				return world.Snapshot{}, changedDuringEnactment(c)
			}
			return post, err
		})
		if applied || err != nil && !errors.Is(err, errNotInTx) {
			if err != nil {
				return nil, world.Snapshot{}, world.Snapshot{}, err
			}
			return next, pre, post, nil
		}
	}
	post, err := s.deps.World.Apply(ctx, c, pre)
	if errors.Is(err, store.ErrConflict) {
		return nil, world.Snapshot{}, world.Snapshot{}, changedDuringEnactment(c)
	}
	if err != nil {
		return nil, world.Snapshot{}, world.Snapshot{}, err
	}
	next, _, err := s.recordEnactment(ctx, p, res, func(store.Store) (world.Snapshot, error) { return post, nil })
	if err != nil {
		// The world changed but the enactment could not be recorded (the proposal
		// moved on concurrently, or the store failed): put the world back, so no
		// change exists without its record.
		return nil, world.Snapshot{}, world.Snapshot{}, s.undoApply(ctx, c, pre, err)
	}
	return next, pre, post, nil
}

// holdForApproval records an enactment-time reclassification and says why the
// enactment is refused: the proposal moves to PENDING_APPROVAL with its new policy
// decision, or, when the policy refuses the change itself, stays where it is with
// the refusal audited.
func (s *Service) holdForApproval(ctx context.Context, p *store.Proposal, re *reclassification) error {
	if re.refused != nil {
		entries, err := s.outboxEntries(ctx, p.TenantID, p.ID, re.audit(p))
		if err != nil {
			return err
		}
		var staged []*store.OutboxEntry
		if err := s.deps.Store.InTx(ctx, func(tx store.Store) error {
			var err error
			staged, err = stageIn(ctx, tx, entries)
			return err
		}); err != nil {
			return storeError(err)
		}
		s.deliver(ctx, staged)
		return status.Errorf(codes.FailedPrecondition, "enactment of proposal %s refused: the policy refuses the change to enact: %s", p.ID, status.Convert(re.refused).Message())
	}
	open := s.openApproval(p)
	edit := func(d *coordinatorv1.Proposal) { re.edit(d); open(d) }
	if _, err := s.moveAudited(ctx, p, stPendingApproval, transitionEvent(stPendingApproval), edit, columns{impact: re.to}, re.audit(p)); err != nil {
		return err
	}
	return status.Errorf(codes.FailedPrecondition, "enactment of proposal %s refused: %s; it now waits for approval (P3)", p.ID, re.record.GetReasons()[0])
}

// undoApply restores the pre-state after an applied change could not be recorded, and
// says what happened. cause is the recording's error.
func (s *Service) undoApply(ctx context.Context, c world.Change, pre world.Snapshot, cause error) error {
	bg := context.WithoutCancel(ctx)
	if _, rerr := s.deps.World.Restore(bg, c, pre); rerr != nil {
		s.deps.Logger.ErrorContext(ctx, "enactment applied but neither recorded nor undone; the world differs from the record",
			"tenant_id", c.TenantID, "target", c.Target, "record_error", cause, "restore_error", rerr)
		return status.Errorf(codes.Internal, "the change to %s was applied but could not be recorded, and undoing it failed: restore the pre-state %s", c.Target, short(pre.SHA256))
	}
	if st, ok := status.FromError(cause); ok && st.Code() == codes.Aborted {
		return status.Errorf(codes.Aborted, "proposal changed concurrently during enactment; the change was undone, retry")
	}
	return cause
}

// recordEnactment stores the passed dry run res, the move to ENACTED and the post
// snapshot, with their audit events, in one transaction.
func (s *Service) recordEnactment(ctx context.Context, p *store.Proposal, res *coordinatorv1.DryRunResult, apply func(tx store.Store) (world.Snapshot, error)) (*store.Proposal, world.Snapshot, error) {
	to, event, edit := dryRunMove(p, res)
	planned := res.GetPlannedPostStateSha256()
	var post world.Snapshot
	next, err := s.moveChain(ctx, p, func(tx store.Store) error {
		var err error
		if post, err = apply(tx); err != nil {
			return err
		}
		if post.JSON == nil {
			return errNotInTx
		}
		if post.SHA256 != planned {
			return status.Errorf(codes.Aborted, "the change would produce state %s, not the planned %s; nothing was applied, retry", short(post.SHA256), short(planned))
		}
		return tx.Snapshots().Put(ctx, &store.Snapshot{
			ID: newID(s.deps.Now()), ProposalID: p.ID, TenantID: p.TenantID, Kind: "post",
			SHA256: post.SHA256, State: post.JSON, CreatedAt: s.deps.Now().UTC(),
		})
	},
		moveStep{to: to, event: event, edit: edit},
		moveStep{to: stEnacted, cols: columns{post: planned}, after: []auditEvent{snapshotAudit(p, "post", planned)}},
	)
	return next, post, err
}

// changedDuringEnactment: the world's state moved between the dry run and the apply.
func changedDuringEnactment(c world.Change) error {
	return status.Errorf(codes.Aborted, "the state of %s changed during enactment; nothing was applied, retry", c.Target)
}

// errNotInTx: the world cannot be changed in the store's transaction (a webhook).
var errNotInTx = errors.New("coordinator: the world is not in the store")

// rollback restores the pre-state snapshot exactly and checks the hash (P7).
func (s *Service) rollback(ctx context.Context, p *store.Proposal) (*store.Proposal, world.Snapshot, error) {
	if p.Status != stEnacted {
		return nil, world.Snapshot{}, status.Errorf(codes.FailedPrecondition, "proposal %s is %s; only an ENACTED proposal can be rolled back", p.ID, p.Status)
	}
	pre, err := s.preSnapshot(ctx, p)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	_, c, _, err := decisionChange(p)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	restored, err := s.deps.World.Restore(ctx, c, pre)
	if err != nil {
		return nil, world.Snapshot{}, err
	}
	if restored.SHA256 != p.PreStateSHA256 {
		return nil, world.Snapshot{}, status.Errorf(codes.Aborted, "restored state hashes to %s, not the pre-state %s", short(restored.SHA256), short(p.PreStateSHA256))
	}
	next, err := s.move(ctx, p, stRolledBack, func(d *coordinatorv1.Proposal) { d.Reason = "rolled back to the pre-state snapshot" }, "")
	return next, restored, err
}

// snapshotProto renders a snapshot for a response.
func snapshotProto(kind string, s world.Snapshot, at time.Time) (*typesv1.Snapshot, error) {
	out := &typesv1.Snapshot{Kind: kind, Sha256: s.SHA256, CreatedAt: timestamppb.New(at), State: &structpb.Struct{}}
	if err := protojson.Unmarshal(s.JSON, out.State); err != nil {
		return nil, fmt.Errorf("coordinator: snapshot: %w", err)
	}
	return out, nil
}
