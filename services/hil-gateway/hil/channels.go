// channels.go holds the other ways to vote: the approval page (package web, through
// pageBackend) and chat buttons (Slack, Telegram: chatAction), each ending in the same
// vote as the API, with the same second factor; and the gateway's plain HTTP routes.

package hil

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/notify"
	"github.com/decision-fabric/fabric/services/hil-gateway/hil/web"
)

// Routes adds the approval page (under /ui) and the chat callbacks (Slack's
// interactivity at /hil/slack/interactions, Telegram's webhook at
// /hil/telegram/webhook, when those channels are configured) to mux.
func (s *Service) Routes(page *web.Page) func(mux *http.ServeMux) {
	return func(mux *http.ServeMux) {
		if page != nil {
			page.Register(mux)
		}
		for _, ch := range s.deps.Channels {
			switch c := ch.(type) {
			case *notify.Slack:
				mux.Handle("POST /hil/slack/interactions", c.InteractionHandler(s.chatAction))
			case *notify.Telegram:
				mux.Handle("POST /hil/telegram/webhook", c.WebhookHandler(s.chatAction))
			}
		}
	}
}

// chatAction records a vote from a chat button, once the user typed their TOTP code:
// the chat identity stands for the approver configured for it (hil.chat_users).
func (s *Service) chatAction(ctx context.Context, a notify.Action) (string, error) {
	u, ok := s.deps.ChatUsers[a.Channel+":"+a.ChannelUser]
	if !ok {
		return "", status.Errorf(codes.PermissionDenied, "this %s account is not linked to an approver (hil.chat_users)", a.Channel)
	}
	pr := &auth.Principal{Subject: u.Subject, TenantID: u.Tenant, Roles: u.Roles, Groups: u.Groups}
	_, p, err := s.vote(ctx, pr, vote{proposalID: a.ProposalID, decision: a.Decision, reason: a.Reason, totp: a.TOTP, channel: a.Channel})
	if err != nil {
		return "", status.Error(status.Code(err), status.Convert(err).Message())
	}
	return "Recorded. Proposal " + p.GetId() + " is now " + strings.TrimPrefix(p.GetStatus().String(), "PROPOSAL_STATUS_") + ".", nil
}

// pageBackend is the approval page's view of the gateway.
type pageBackend struct{ s *Service }

// PageBackend is the backend the approval page (package web) serves.
func (s *Service) PageBackend() web.Backend { return pageBackend{s} }

func (b pageBackend) Authenticate(_ context.Context, token string) (*auth.Principal, error) {
	if b.s.deps.Verifier == nil {
		return nil, status.Error(codes.Unavailable, "sign-in is not configured")
	}
	p, err := b.s.deps.Verifier.Verify(token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "the token is not valid")
	}
	if !p.HasAnyRole(auth.RoleApprover) {
		return nil, status.Error(codes.PermissionDenied, "the token has no approver role")
	}
	return p, nil
}

func (b pageBackend) principal(ctx context.Context) (*auth.Principal, error) {
	p := auth.FromContext(ctx)
	if p == nil {
		return nil, status.Error(codes.Unauthenticated, "sign in first")
	}
	return p, nil
}

func (b pageBackend) Pending(ctx context.Context) ([]web.Item, error) {
	pr, err := b.principal(ctx)
	if err != nil {
		return nil, err
	}
	items, err := b.s.pending(ctx, pr)
	if err != nil {
		return nil, err
	}
	out := make([]web.Item, len(items))
	for i, it := range items {
		out[i] = webItem(it)
	}
	return out, nil
}

func (b pageBackend) Item(ctx context.Context, proposalID string) (*web.Item, error) {
	pr, err := b.principal(ctx)
	if err != nil {
		return nil, err
	}
	got, err := b.s.deps.Coordinator.GetProposal(b.s.deps.AsService(ctx, pr.TenantID), &coordinatorv1.GetProposalRequest{Id: proposalID})
	if err != nil {
		return nil, err
	}
	if got.GetProposal().GetTenantId() != pr.TenantID {
		return nil, status.Error(codes.NotFound, "proposal not found")
	}
	it, err := b.s.item(ctx, pr, got.GetProposal())
	if err != nil {
		return nil, err
	}
	w := webItem(it)
	return &w, nil
}

func (b pageBackend) Decide(ctx context.Context, proposalID string, d web.Decision) (string, error) {
	pr, err := b.principal(ctx)
	if err != nil {
		return "", err
	}
	decision := "deny"
	if d.Approve {
		decision = "approve"
	}
	_, p, err := b.s.vote(ctx, pr, vote{proposalID: proposalID, decision: decision, reason: d.Reason, totp: d.TOTP, channel: "page"})
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(p.GetStatus().String(), "PROPOSAL_STATUS_"), nil
}

// webItem is a pending item as the page shows it.
func webItem(it *hilv1.PendingApproval) web.Item {
	p := it.GetProposal()
	m := p.GetManifest()
	var manifest []byte
	if m != nil {
		manifest, _ = protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	}
	w := web.Item{
		ProposalID: it.GetProposalId(), TenantID: it.GetTenantId(), Impact: it.GetImpact(),
		Status: strings.TrimPrefix(p.GetStatus().String(), "PROPOSAL_STATUS_"),
		Action: m.GetAction(), Target: m.GetTarget(), Regions: m.GetRegions(), Manifest: string(manifest),
		VotesAccept: int(p.GetVotes().GetAccept()), VotesReject: int(p.GetVotes().GetReject()),
		VotesCounter: int(p.GetVotes().GetCounter()), VotesAbstain: int(p.GetVotes().GetAbstain()),
		Confidence: p.GetScore().GetConfidence(), RiskScore: p.GetScore().GetRiskScore(),
		RiskLevel: p.GetScore().GetRiskLevel(), Explanation: p.GetScore().GetExplanation(),
		PolicyReasons: p.GetPolicy().GetReasons(), ApprovedBy: it.GetApprovedBy(), DeniedBy: it.GetDeniedBy(),
		Needed: it.GetNeeded(), CanVote: it.GetCanVote(), WhyNot: it.GetWhyNot(),
	}
	if it.GetDeadline() != nil {
		w.Deadline = it.GetDeadline().AsTime()
	}
	for _, l := range it.GetDiff() {
		w.Diff = append(w.Diff, web.DiffLine{Path: l.GetPath(), Before: l.GetBefore(), After: l.GetAfter()})
	}
	return w
}
