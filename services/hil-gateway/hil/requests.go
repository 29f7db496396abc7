// requests.go holds approval requests: opening one with its notifications in one
// transaction (RequestApproval), closing it when the proposal is decided (resolved),
// and the sweeper that closes requests the coordinator ended (EXPIRED) or decided
// elsewhere.

package hil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/notify"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/store"
)

// RequestApproval implements the RPC: the request and its notifications (the request
// now, a reminder and an escalation at remind_at) in one transaction; a second call
// for the same proposal changes nothing.
func (s *Service) RequestApproval(ctx context.Context, req *hilv1.RequestApprovalRequest) (*hilv1.RequestApprovalResponse, error) {
	if err := auth.RequireTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	r := &store.ApprovalRequest{
		TenantID: req.GetTenantId(), ProposalID: req.GetProposalId(), Impact: req.GetImpact(),
		Summary:         redact.String(req.GetSummary()),
		ApprovalsNeeded: max(int(req.GetApprovalsNeeded()), 1),
		Deadline:        req.GetDeadline().AsTime(),
	}
	if req.GetRemindAt() != nil {
		r.ReminderAt = req.GetRemindAt().AsTime()
	}
	notes, err := s.notes(r)
	if err != nil {
		return nil, err
	}
	created, err := s.deps.Store.Approvals().OpenRequest(ctx, r, notes)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "open the approval request: %v", err)
	}
	if created {
		s.kick()
		s.deps.Logger.InfoContext(ctx, "approval requested", "proposal_id", r.ProposalID, "tenant_id", r.TenantID,
			"deadline", r.Deadline, "notifications", len(notes))
	}
	return &hilv1.RequestApprovalResponse{Pending: &hilv1.PendingApproval{
		ProposalId: r.ProposalID, TenantId: r.TenantID, Impact: r.Impact, Summary: r.Summary,
		ApprovalsNeeded: int32(r.ApprovalsNeeded), Deadline: ts(r.Deadline),
	}}, nil
}

// notes are a new request's notifications: the request on the first channel now, and
// at the reminder time a reminder on the first and an escalation on the second.
func (s *Service) notes(r *store.ApprovalRequest) ([]*store.Notification, error) {
	chans := s.deps.Channels
	msg := func(kind string) notify.Message {
		return notify.Message{EventID: r.ProposalID + "/" + kind, Kind: kind, TenantID: r.TenantID, ProposalID: r.ProposalID,
			Impact: r.Impact, Summary: r.Summary, Deadline: r.Deadline, ApprovalsNeeded: r.ApprovalsNeeded, Link: s.link(r.ProposalID)}
	}
	var out []*store.Notification
	add := func(ch notify.Channel, m notify.Message, at time.Time) error {
		raw, err := json.Marshal(m)
		if err != nil {
			return status.Errorf(codes.Internal, "notification: %v", err)
		}
		out = append(out, &store.Notification{EventID: m.EventID, Channel: ch.Name(), TenantID: r.TenantID,
			ProposalID: r.ProposalID, Kind: m.Kind, Payload: raw, NotBefore: at})
		return nil
	}
	if err := add(chans[0], msg(notify.KindRequest), time.Time{}); err != nil {
		return nil, err
	}
	if !r.ReminderAt.IsZero() && r.ReminderAt.Before(r.Deadline) {
		if err := add(chans[0], msg(notify.KindReminder), r.ReminderAt); err != nil {
			return nil, err
		}
		if len(chans) > 1 {
			if err := add(chans[1], msg(notify.KindEscalation), r.ReminderAt); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// link is the approval page's address for a proposal.
func (s *Service) link(proposalID string) string {
	return strings.TrimSuffix(s.deps.PublicURL, "/") + "/p/" + proposalID
}

// resolved closes p's request (it was approved, denied or expired): the unsent
// reminders are cancelled and the outcome is announced, in one transaction. A request
// already closed, or never opened, is left alone.
func (s *Service) resolved(ctx context.Context, p *coordinatorv1.Proposal) {
	outcome := strings.TrimPrefix(p.GetStatus().String(), "PROPOSAL_STATUS_")
	switch outcome {
	case store.OutcomeApproved, store.OutcomeDenied, store.OutcomeExpired:
	default:
		outcome = "" // moved on past the approval (dry run, enactment): no outcome to announce
	}
	r, err := s.deps.Store.Approvals().GetRequest(ctx, p.GetTenantId(), p.GetId())
	if errors.Is(err, store.ErrNotFound) || err == nil && !r.ResolvedAt.IsZero() {
		return
	}
	if err != nil {
		s.deps.Logger.WarnContext(ctx, "approval request: read", "proposal_id", p.GetId(), "error", err)
		return
	}
	var notes []*store.Notification
	if outcome != "" {
		m := notify.Message{EventID: r.ProposalID + "/" + notify.KindResolved, Kind: notify.KindResolved, TenantID: r.TenantID,
			ProposalID: r.ProposalID, Impact: r.Impact, Summary: r.Summary, Deadline: r.Deadline, Outcome: outcome, Link: s.link(r.ProposalID)}
		raw, err := json.Marshal(m)
		if err == nil {
			notes = append(notes, &store.Notification{EventID: m.EventID, Channel: s.deps.Channels[0].Name(), TenantID: r.TenantID,
				ProposalID: r.ProposalID, Kind: m.Kind, Payload: raw})
		}
	} else {
		outcome = store.OutcomeApproved
	}
	err = s.deps.Store.Approvals().Resolve(ctx, r.TenantID, r.ProposalID, outcome, s.deps.Now(), notes)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		s.deps.Logger.WarnContext(ctx, "approval request: resolve", "proposal_id", p.GetId(), "error", err)
		return
	}
	s.kick()
}

// SweeperCommitLabel labels the sweeper's commits (store.CommitLabel).
const SweeperCommitLabel = "hil-sweeper"

// sweeper closes requests whose proposal was decided without a vote here (expired
// by the coordinator at the deadline, or decided through another gateway replica).
type sweeper struct {
	s      *Service
	every  time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (s *Service) startSweeper(every time.Duration) *sweeper {
	ctx, cancel := context.WithCancel(store.WithCommitLabel(context.Background(), SweeperCommitLabel))
	sw := &sweeper{s: s, every: every, cancel: cancel}
	sw.wg.Add(1)
	go func() {
		defer sw.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sw.sweep(ctx)
			}
		}
	}()
	return sw
}

func (sw *sweeper) stop() {
	sw.cancel()
	sw.wg.Wait()
}

// sweep looks at the requests whose deadline has passed and closes those whose
// proposal is no longer waiting.
func (sw *sweeper) sweep(ctx context.Context) {
	s := sw.s
	due, err := s.deps.Store.Approvals().ListOpenAll(ctx, s.deps.Now(), 100)
	if err != nil {
		s.deps.Logger.WarnContext(ctx, "approval sweeper: list", "error", err)
		return
	}
	for _, r := range due {
		if s.deps.Now().Before(r.Deadline) {
			continue // only its reminder is due: the deliverer sends it
		}
		got, err := s.deps.Coordinator.GetProposal(s.deps.AsService(ctx, r.TenantID), &coordinatorv1.GetProposalRequest{Id: r.ProposalID})
		if err != nil {
			if status.Code(err) != codes.NotFound {
				s.deps.Logger.WarnContext(ctx, "approval sweeper: read proposal", "proposal_id", r.ProposalID, "error", fmt.Sprint(err))
			}
			continue
		}
		if got.GetProposal().GetStatus() != coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL {
			s.resolved(ctx, got.GetProposal())
		}
	}
}
