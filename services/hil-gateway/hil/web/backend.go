// Package web is the hil-gateway's approval page: sign in with a token, the pending
// list, a detail page, approve or deny with a TOTP code. Server-rendered HTML only.
package web

import (
	"context"
	"time"

	"github.com/decision-fabric/fabric/internal/auth"
)

// Backend is what the page needs from the hil-gateway. Errors are gRPC status errors
// (codes.PermissionDenied, codes.Unauthenticated, codes.NotFound,
// codes.FailedPrecondition, codes.InvalidArgument, codes.ResourceExhausted); the page
// shows their message.
type Backend interface {
	// Authenticate verifies a bearer token (sign-in) and returns its principal.
	Authenticate(ctx context.Context, token string) (*auth.Principal, error)
	// Pending lists what the principal's tenant waits for, oldest first. The
	// context carries the principal (auth.WithPrincipal).
	Pending(ctx context.Context) ([]Item, error)
	// Item is one pending proposal of the principal's tenant.
	Item(ctx context.Context, proposalID string) (*Item, error)
	// Decide records the principal's vote (the approver is the principal's subject)
	// and returns the proposal's status afterwards ("PENDING_APPROVAL", "APPROVED",
	// "DENIED").
	Decide(ctx context.Context, proposalID string, d Decision) (string, error)
}

// Decision is a vote from the page.
type Decision struct {
	Approve bool
	Reason  string
	TOTP    string
}

// Item is what an approver needs to decide. Every string may hold anything a
// proposer submitted (control characters, right-to-left overrides, markup): the page
// shows them escaped, never rendered.
type Item struct {
	ProposalID string
	TenantID   string
	Status     string
	Impact     string
	Action     string
	Target     string
	Regions    []string
	// Manifest is the manifest as indented JSON.
	Manifest string
	// Diff is the change against the current world.
	Diff []DiffLine
	// Votes of the regions.
	VotesAccept, VotesReject, VotesCounter, VotesAbstain int
	Confidence, RiskScore                                float64
	RiskLevel, Explanation                               string
	PolicyReasons                                        []string
	// Approvals so far: who approved, who denied.
	ApprovedBy, DeniedBy []string
	// Needed says, per approval set, what is still missing ("1 more of group sre").
	Needed   []string
	Deadline time.Time
	// CanVote is whether the principal may vote on it now; WhyNot says why not.
	CanVote bool
	WhyNot  string
}

// DiffLine is one changed value: Path in the target's state, before and after.
type DiffLine struct {
	Path, Before, After string
}
