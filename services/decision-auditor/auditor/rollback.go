package auditor

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/decision-fabric/fabric/internal/canonical"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
)

// snapshotSummary is the summary of a "snapshot.recorded" entry.
type snapshotSummary struct {
	Kind   string `json:"kind"`
	SHA256 string `json:"sha256"`
}

// PlanRollback implements the RPC: from the proposal's recorded pre and post
// snapshot hashes, the plan that goes back from post to pre. It reads only the
// audit log (verified entries with proofs) and changes nothing.
func (s *Service) PlanRollback(ctx context.Context, req *auditorv1.PlanRollbackRequest) (*auditorv1.PlanRollbackResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	tr, err := s.log.Trail(ctx, tenant, req.GetProposalId())
	if err != nil {
		s.logFailure(ctx, "PlanRollback", err)
		return nil, fail(err)
	}
	out := &auditorv1.PlanRollbackResponse{
		ProposalId: req.GetProposalId(),
		DryRunOnly: s.deps.Simulation,
		Checkpoint: auditlog.CheckpointProto(tr.Checkpoint, s.log.Verifier()),
	}
	var pre, post snapshotSummary
	postIndex := int64(-1)
	for i, e := range tr.Entries {
		switch {
		case e.Event == auditlog.EventSnapshotRecorded:
			var sum snapshotSummary
			if err := json.Unmarshal(e.Summary, &sum); err != nil || !canonical.IsSHA256Hex(sum.SHA256) {
				return nil, status.Errorf(codes.DataLoss, "audit entry %d does not hold a snapshot hash", e.Index)
			}
			switch {
			case sum.Kind == KindPre && out.PreSnapshot == nil:
				pre, out.PreSnapshot = sum, auditlog.EntryProto(e, tr.Proofs[i])
			case sum.Kind == KindPost && out.PostSnapshot == nil:
				post, out.PostSnapshot, postIndex = sum, auditlog.EntryProto(e, tr.Proofs[i]), e.Index
			}
		case e.Event == auditlog.EventProposalRolledBack && postIndex >= 0 && e.Index > postIndex:
			out.AlreadyRolledBack = true
		}
	}
	var missing []string
	if out.PreSnapshot == nil {
		missing = append(missing, KindPre)
	}
	if out.PostSnapshot == nil {
		missing = append(missing, KindPost)
	}
	if len(missing) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition,
			"proposal %s has no recorded %v snapshot: record it with POST /snapshot/%s before planning a rollback",
			req.GetProposalId(), missing, req.GetProposalId())
	}
	out.FromSha256, out.ToSha256 = post.SHA256, pre.SHA256
	out.Noop = pre.SHA256 == post.SHA256
	out.Steps = planSteps(out)
	return out, nil
}

func planSteps(p *auditorv1.PlanRollbackResponse) []string {
	if p.Noop {
		return []string{"Nothing to restore: the pre and post snapshots hash the same (" + p.ToSha256 + ")."}
	}
	steps := []string{
		fmt.Sprintf("Check that the current state still hashes to %s, the post snapshot (audit entry %d); if it does not, the state moved on since the proposal was enacted: stop and re-plan.",
			p.FromSha256, p.PostSnapshot.GetIndex()),
		fmt.Sprintf("Restore the state captured by the pre snapshot (audit entry %d) and check that it hashes to %s.",
			p.PreSnapshot.GetIndex(), p.ToSha256),
		"Record the outcome in the audit log: a proposal.rolled_back entry whose payload names both hashes.",
	}
	if p.AlreadyRolledBack {
		steps = append([]string{"A proposal.rolled_back entry already follows the post snapshot: check the current state before repeating the rollback."}, steps...)
	}
	if p.DryRunOnly {
		steps = append([]string{"Simulation mode: run this plan as a dry run only; nothing is to be enacted."}, steps...)
	}
	return steps
}
