// Package approval is the fabric's human-approval model: who may approve or
// deny a proposal, how many of whom, and when a request is resolved. It is
// pure: no I/O, no store, no clock (times come in with the request and the
// votes).
//
// Semantics (Teleport's access-request thresholds, with a four-eyes rule):
//
//   - [Rules] holds sets of rules. The rules of one set are OR-ed, the sets
//     are AND-ed. A rule has an approve threshold M, an optional deny
//     threshold N and a reviewer filter over the approver's roles and groups.
//   - A set is satisfied when one of its rules has M approvals from distinct
//     approvers matching its filter. The request is APPROVED when every set is
//     satisfied by approvers no two sets share: one person who is both "sre"
//     and "manager" cannot stand for "one sre AND one manager".
//   - The request is DENIED as soon as any rule's deny threshold is met by
//     distinct approvers matching its filter. Deny is checked first.
//   - The proposer can never vote on their own proposal; an approver votes
//     once; a vote after the request is resolved or expired is refused and
//     changes nothing; an approver matching no rule's filter is refused.
//   - Without sets ([Rules.Sets] empty) the default rule applies: approve M
//     (the policy's approvals_required, at least 1; at least 2 for critical
//     impact), deny 1, any approver with role "approver".
//
// [Cast] applies one vote to a [State]; [Tally] replays a list of votes. Both
// explain the outcome in words ([Outcome.Explanation]).
package approval

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Impact levels that need approval by default.
const (
	ImpactHigh     = "high"
	ImpactCritical = "critical"
)

// RoleApprover is the role the default rule asks for.
const RoleApprover = "approver"

// Limits that keep the tally cheap (the policy loader enforces them too).
const (
	MaxSets        = 5
	MaxRulesPerSet = 5
	MaxThreshold   = 10
)

// Decision is an approver's answer.
type Decision string

// Decisions.
const (
	Approve Decision = "approve"
	Deny    Decision = "deny"
)

// Status is where a request stands.
type Status string

// Statuses. Every status but Pending is final.
const (
	Pending  Status = "PENDING"
	Approved Status = "APPROVED"
	Denied   Status = "DENIED"
	Expired  Status = "EXPIRED"
)

// Errors of [Cast] and [NewState]. Test with errors.Is; the message names
// the approver, the first vote, the filters or the deadline.
var (
	ErrSelfApproval = errors.New("approval: the proposer cannot vote on their own proposal")
	ErrDoubleVote   = errors.New("approval: approver has already voted")
	ErrResolved     = errors.New("approval: request is already resolved")
	ErrExpired      = errors.New("approval: request has expired")
	ErrNotEligible  = errors.New("approval: approver matches no rule's reviewer filter")
	ErrInvalidVote  = errors.New("approval: invalid vote")
	ErrInvalidRules = errors.New("approval: invalid rules")
)

// Request is one proposal waiting for humans.
type Request struct {
	ProposalID string
	Tenant     string
	Proposer   string // subject of the proposer
	Impact     string // "high", "critical", ... (the default rule reads it)
	Created    time.Time
	Expires    time.Time // a vote at or after Expires is refused
}

// Vote is one approver's answer.
type Vote struct {
	Approver string // subject
	Roles    []string
	Groups   []string
	Decision Decision
	Reason   string
	At       time.Time
}

// Filter selects reviewers. An approver matches when, for each non-empty
// list, they hold at least one of its values: {roles: [approver], groups:
// [sre]} is "role approver and group sre". An empty filter matches nobody.
type Filter struct {
	Roles  []string
	Groups []string
}

// Rule is one way to satisfy a set.
type Rule struct {
	Name    string
	Approve int // approvals needed, >= 1
	Deny    int // denials that end the request; 0 = this rule never denies
	Filter  Filter
}

// Set is a list of alternative rules.
type Set struct {
	Rules []Rule
}

// Rules is a tenant's approval policy.
type Rules struct {
	// Sets, AND-ed. Empty: the default rule (see the package doc).
	Sets []Set
	// DefaultApprove is M of the default rule (the policy's
	// approvals_required); below 1 counts as 1, and critical impact needs at
	// least 2.
	DefaultApprove int
	// ExpiresAfter is how long a request stays open; 0 = the decision
	// deadline (the caller's).
	ExpiresAfter time.Duration
	// ReminderBefore is when, before expiry, approvers are reminded; 0 = no
	// reminder.
	ReminderBefore time.Duration
}

// Effective returns the sets that govern a request of the given impact: the
// configured ones, or the default rule.
func (r Rules) Effective(impact string) []Set {
	if len(r.Sets) > 0 {
		return r.Sets
	}
	m := max(r.DefaultApprove, 1)
	if impact == ImpactCritical {
		m = max(m, 2)
	}
	return []Set{{Rules: []Rule{{Name: "default", Approve: m, Deny: 1, Filter: Filter{Roles: []string{RoleApprover}}}}}}
}

// Validate checks thresholds, filters and limits.
func (r Rules) Validate() error {
	if len(r.Sets) > MaxSets {
		return fmt.Errorf("%w: %d sets (at most %d)", ErrInvalidRules, len(r.Sets), MaxSets)
	}
	names := map[string]bool{}
	for i, s := range r.Sets {
		if len(s.Rules) == 0 || len(s.Rules) > MaxRulesPerSet {
			return fmt.Errorf("%w: set %d has %d rules (want 1-%d)", ErrInvalidRules, i, len(s.Rules), MaxRulesPerSet)
		}
		for _, ru := range s.Rules {
			switch {
			case ru.Name == "":
				return fmt.Errorf("%w: set %d: a rule has no name", ErrInvalidRules, i)
			case names[ru.Name]:
				return fmt.Errorf("%w: duplicate rule name %q", ErrInvalidRules, ru.Name)
			case ru.Approve < 1 || ru.Approve > MaxThreshold:
				return fmt.Errorf("%w: rule %q: approve must be 1-%d, not %d", ErrInvalidRules, ru.Name, MaxThreshold, ru.Approve)
			case ru.Deny < 0 || ru.Deny > MaxThreshold:
				return fmt.Errorf("%w: rule %q: deny must be 1-%d (or unset), not %d", ErrInvalidRules, ru.Name, MaxThreshold, ru.Deny)
			case len(ru.Filter.Roles) == 0 && len(ru.Filter.Groups) == 0:
				return fmt.Errorf("%w: rule %q: empty reviewer filter", ErrInvalidRules, ru.Name)
			}
			names[ru.Name] = true
		}
	}
	if r.ExpiresAfter < 0 || r.ReminderBefore < 0 {
		return fmt.Errorf("%w: negative duration", ErrInvalidRules)
	}
	if r.ExpiresAfter > 0 && r.ReminderBefore >= r.ExpiresAfter {
		return fmt.Errorf("%w: reminder_before %s must be shorter than expires_after %s", ErrInvalidRules, r.ReminderBefore, r.ExpiresAfter)
	}
	return nil
}

// Matches reports whether an approver with these roles and groups passes f.
func (f Filter) Matches(roles, groups []string) bool {
	if len(f.Roles) == 0 && len(f.Groups) == 0 {
		return false
	}
	if len(f.Roles) > 0 && !intersects(f.Roles, roles) {
		return false
	}
	if len(f.Groups) > 0 && !intersects(f.Groups, groups) {
		return false
	}
	return true
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// String describes f: "role approver and group sre", "group manager or lead".
func (f Filter) String() string {
	var parts []string
	if len(f.Roles) > 0 {
		parts = append(parts, "role "+strings.Join(f.Roles, " or "))
	}
	if len(f.Groups) > 0 {
		parts = append(parts, "group "+strings.Join(f.Groups, " or "))
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, " and ")
}

// State is a request, its rules and the votes accepted so far.
type State struct {
	Request Request
	Rules   Rules
	Votes   []Vote // accepted votes, in the order they were cast
	Outcome Outcome
}

// NewState opens a request. The rules are validated; the request needs a
// proposer and an expiry after its creation.
func NewState(req Request, rules Rules) (State, error) {
	if err := rules.Validate(); err != nil {
		return State{}, err
	}
	if strings.TrimSpace(req.Proposer) == "" {
		return State{}, fmt.Errorf("%w: request %q has no proposer", ErrInvalidRules, req.ProposalID)
	}
	if !req.Expires.After(req.Created) {
		return State{}, fmt.Errorf("%w: request %q expires (%s) before it is created (%s)", ErrInvalidRules,
			req.ProposalID, req.Expires.Format(time.RFC3339), req.Created.Format(time.RFC3339))
	}
	s := State{Request: req, Rules: rules}
	s.Outcome = evaluate(req, rules.Effective(req.Impact), nil)
	return s, nil
}

// Cast applies one vote. A refused vote returns s unchanged with an error
// saying why; an accepted one returns the new state (its Outcome updated).
func Cast(s State, v Vote) (State, error) {
	if err := check(s, v); err != nil {
		return s, err
	}
	n := s
	n.Votes = append(slices.Clip(s.Votes), cloneVote(v))
	n.Outcome = evaluate(n.Request, n.Rules.Effective(n.Request.Impact), n.Votes)
	return n, nil
}

func cloneVote(v Vote) Vote {
	v.Roles = slices.Clone(v.Roles)
	v.Groups = slices.Clone(v.Groups)
	return v
}

func check(s State, v Vote) error {
	req := s.Request
	switch {
	case strings.TrimSpace(v.Approver) == "":
		return fmt.Errorf("%w: no approver", ErrInvalidVote)
	case v.Decision != Approve && v.Decision != Deny:
		return fmt.Errorf("%w: decision %q is not approve or deny", ErrInvalidVote, v.Decision)
	case s.Outcome.Status != Pending && s.Outcome.Status != "":
		return fmt.Errorf("%w: %s is %s; %s's vote changes nothing", ErrResolved, req.ProposalID, s.Outcome.Status, v.Approver)
	case v.Approver == req.Proposer:
		return fmt.Errorf("%w: %s proposed %s", ErrSelfApproval, v.Approver, req.ProposalID)
	case !v.At.Before(req.Expires):
		return fmt.Errorf("%w: %s's vote at %s is at or after the deadline %s", ErrExpired, v.Approver,
			v.At.UTC().Format(time.RFC3339), req.Expires.UTC().Format(time.RFC3339))
	case v.At.Before(req.Created):
		return fmt.Errorf("%w: %s's vote at %s is before the request was created", ErrInvalidVote, v.Approver, v.At.UTC().Format(time.RFC3339))
	}
	for _, prev := range s.Votes {
		if prev.Approver == v.Approver {
			return fmt.Errorf("%w: %s already voted %s at %s", ErrDoubleVote, v.Approver, prev.Decision, prev.At.UTC().Format(time.RFC3339))
		}
	}
	sets := s.Rules.Effective(req.Impact)
	var filters []string
	for _, set := range sets {
		for _, r := range set.Rules {
			if r.Filter.Matches(v.Roles, v.Groups) {
				return nil
			}
			filters = append(filters, fmt.Sprintf("%s: %s", r.Name, r.Filter))
		}
	}
	return fmt.Errorf("%w: %s (roles %v, groups %v) matches none of: %s", ErrNotEligible, v.Approver, v.Roles, v.Groups, strings.Join(filters, "; "))
}

// Expire ends a pending request whose deadline has passed at now. It
// changes nothing otherwise.
func Expire(s State, now time.Time) State {
	if s.Outcome.Status != Pending || now.Before(s.Request.Expires) {
		return s
	}
	n := s
	n.Outcome.Status = Expired
	n.Outcome.Explanation = append(slices.Clone(s.Outcome.Explanation),
		fmt.Sprintf("expired at %s without a decision", s.Request.Expires.UTC().Format(time.RFC3339)))
	return n
}

// Refusal is a vote Tally did not count, and why.
type Refusal struct {
	Vote Vote
	Err  error
}

// Tally replays votes, in order, on a new request: the outcome, and the
// votes refused with their reasons (a proposer's, a second vote, a vote after
// the resolution or the deadline, an approver no filter matches).
func Tally(req Request, rules Rules, votes []Vote) (Outcome, []Refusal, error) {
	s, err := NewState(req, rules)
	if err != nil {
		return Outcome{}, nil, err
	}
	var refused []Refusal
	for _, v := range votes {
		n, err := Cast(s, v)
		if err != nil {
			refused = append(refused, Refusal{Vote: v, Err: err})
			continue
		}
		s = n
	}
	return s.Outcome, refused, nil
}
