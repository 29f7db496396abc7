// Package notify sends the hil-gateway's approval notifications: one interface
// (Channel) with a real client per system (e-mail over SMTP, Slack, Telegram) and a
// simulated channel that records what would have been sent.
//
// A Message carries only what an approver needs to decide whether to open the
// approval page: the proposal's id, tenant, impact, a summary made of the manifest's
// action, target and regions (never its parameters, metadata or the proposer's
// identity), the deadline and a link. No personal data is ever put in one; Render
// checks that again (redact) before anything leaves the process.
//
// Delivery is the caller's (the hil-gateway's outbox): a Channel sends one message
// once per call and says whether it was accepted. Message.EventID is stable across
// retries of one event, and every channel passes it to the receiving system where it
// can carry one (the e-mail's Message-ID, Slack's message metadata, Telegram's
// inline button data), so a retry after a crash can be recognised.
package notify

import (
	"context"
	"sync"
	"time"
)

// Kinds of message.
const (
	KindRequest    = "request"    // a new approval request
	KindReminder   = "reminder"   // the deadline is near and the request is still open
	KindEscalation = "escalation" // the same, on the second channel
	KindResolved   = "resolved"   // approved, denied or expired
)

// Message is one notification about one approval request.
type Message struct {
	EventID    string // stable per event: "<proposal_id>/<kind>[/<n>]"
	Kind       string // KindRequest, KindReminder, KindEscalation, KindResolved
	TenantID   string
	ProposalID string
	Impact     string // "low" | "medium" | "high" | "critical"
	// Summary is "<action> <target> in <regions>", built by the gateway from the
	// manifest; never parameters, metadata or the proposer.
	Summary         string
	Deadline        time.Time
	ApprovalsNeeded int
	// Outcome is the final status for KindResolved ("APPROVED", "DENIED", "EXPIRED").
	Outcome string
	// Link is the approval page's URL for the proposal.
	Link string
}

// Channel is one way to reach approvers.
type Channel interface {
	// Name is the channel's name in configuration, metrics and logs ("smtp",
	// "slack", "telegram", "simulated").
	Name() string
	// Send delivers m once. An error means it was not accepted (the caller retries);
	// a Permanent error means retrying cannot help.
	Send(ctx context.Context, m Message) error
}

// PermanentError marks a send that must not be retried (a rejected address, a
// channel the bot was removed from).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Simulated records what would have been sent, in order. It is the channel in
// simulation mode and in tests.
type Simulated struct {
	mu   sync.Mutex
	sent []Message
}

// Name implements Channel.
func (s *Simulated) Name() string { return "simulated" }

// Send implements Channel: it records m.
func (s *Simulated) Send(_ context.Context, m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

// Sent returns a copy of what was recorded.
func (s *Simulated) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}
