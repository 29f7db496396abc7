package coordinator

import (
	"context"
	"fmt"
	"strings"

	"github.com/decision-fabric/fabric/internal/store"
)

// Auditor appends lifecycle events to the decision auditor's log.
type Auditor interface {
	// Append records event for the proposal with a JSON-object payload (hashes and
	// small facts, never raw manifests). key makes the append idempotent: a retry with
	// the same key records nothing new.
	Append(ctx context.Context, tenantID, proposalID, event string, payload map[string]any, key string) error
	// RecordSnapshot records a pre or post snapshot's SHA256 for the proposal (P7);
	// recording the same kind twice is not an error.
	RecordSnapshot(ctx context.Context, tenantID, proposalID, kind, sha256 string) error
}

// audit records one lifecycle event. The change it records has already been committed,
// so a failure is logged rather than undoing it; the key (proposal id and version) makes
// a later re-append of the same event harmless.
func (s *Service) audit(ctx context.Context, p *store.Proposal, event string, payload map[string]any) {
	if s.deps.Audit == nil {
		return
	}
	if payload == nil {
		payload = map[string]any{}
	}
	payload["status"] = p.Status
	payload["version"] = p.Version
	key := fmt.Sprintf("%s:%d:%s", p.ID, p.Version, event)
	if err := s.deps.Audit.Append(ctx, p.TenantID, p.ID, event, payload, key); err != nil {
		s.deps.Logger.ErrorContext(ctx, "audit append failed", "proposal_id", p.ID, "event", event, "error", err)
	}
}

// transitionEvent names the audit event of a move to status to.
func transitionEvent(to string) string {
	return "proposal." + strings.ToLower(to)
}

// recordSnapshot sends a snapshot reference to the audit log; like audit, a failure is
// logged, not fatal: the snapshot itself is already stored with the proposal.
func (s *Service) recordSnapshot(ctx context.Context, p *store.Proposal, kind, sha string) {
	if s.deps.Audit == nil {
		return
	}
	if err := s.deps.Audit.RecordSnapshot(ctx, p.TenantID, p.ID, kind, sha); err != nil {
		s.deps.Logger.ErrorContext(ctx, "audit snapshot failed", "proposal_id", p.ID, "kind", kind, "error", err)
	}
}
