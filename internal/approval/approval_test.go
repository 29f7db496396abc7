package approval

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func req(impact string) Request {
	return Request{ProposalID: "p1", Tenant: "t1", Proposer: "alice", Impact: impact, Created: t0, Expires: t0.Add(30 * time.Minute)}
}

// sreAndManager: one sre AND one manager; an sre deny ends it.
func sreAndManager() Rules {
	return Rules{Sets: []Set{
		{Rules: []Rule{{Name: "peer", Approve: 1, Deny: 1, Filter: Filter{Roles: []string{"approver"}, Groups: []string{"sre"}}}}},
		{Rules: []Rule{{Name: "manager", Approve: 1, Filter: Filter{Groups: []string{"manager"}}}}},
	}}
}

func vote(who string, d Decision, groups ...string) Vote {
	return Vote{Approver: who, Roles: []string{"approver"}, Groups: groups, Decision: d, Reason: "r", At: t0.Add(time.Minute)}
}

func open(t *testing.T, r Request, rules Rules) State {
	t.Helper()
	s, err := NewState(r, rules)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// --- the attacker's tests ---

func TestSelfApprovalRefused(t *testing.T) {
	for _, d := range []Decision{Approve, Deny} {
		s := open(t, req(ImpactHigh), Rules{})
		n, err := Cast(s, vote("alice", d, "sre"))
		if !errors.Is(err, ErrSelfApproval) {
			t.Fatalf("%s by the proposer: err = %v, want ErrSelfApproval", d, err)
		}
		if len(n.Votes) != 0 || n.Outcome.Status != Pending {
			t.Fatalf("a refused self-vote changed the state: %+v", n)
		}
	}
	// Even where the proposer alone would meet every threshold.
	out, refused, err := Tally(req(ImpactHigh), Rules{}, []Vote{vote("alice", Approve)})
	if err != nil || out.Status != Pending || len(refused) != 1 || !errors.Is(refused[0].Err, ErrSelfApproval) {
		t.Fatalf("Tally with a self-approval: %v %+v %v", out.Status, refused, err)
	}
}

func TestDoubleVoteRefusedNamingTheFirst(t *testing.T) {
	rules := Rules{Sets: []Set{{Rules: []Rule{{Name: "two", Approve: 2, Deny: 2, Filter: Filter{Roles: []string{"approver"}}}}}}}
	s := open(t, req(ImpactHigh), rules)
	s, err := Cast(s, vote("bob", Approve))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []Decision{Approve, Deny} {
		n, err := Cast(s, vote("bob", d))
		if !errors.Is(err, ErrDoubleVote) || !strings.Contains(err.Error(), "already voted approve") {
			t.Fatalf("second vote (%s): err = %v", d, err)
		}
		if len(n.Votes) != 1 || n.Outcome.Status != Pending {
			t.Fatalf("second vote counted: %+v", n.Outcome)
		}
	}
}

func TestVoteAfterResolutionChangesNothing(t *testing.T) {
	s := open(t, req(ImpactHigh), sreAndManager())
	s, _ = Cast(s, vote("bob", Approve, "sre"))
	s, err := Cast(s, vote("carol", Approve, "manager"))
	if err != nil || s.Outcome.Status != Approved {
		t.Fatalf("sre + manager: %v %v", s.Outcome.Status, err)
	}
	n, err := Cast(s, vote("dave", Deny, "sre"))
	if !errors.Is(err, ErrResolved) {
		t.Fatalf("deny after approval: err = %v", err)
	}
	if n.Outcome.Status != Approved || len(n.Votes) != 2 {
		t.Fatalf("a vote after resolution changed the state: %+v", n.Outcome)
	}

	// After a denial.
	s = open(t, req(ImpactHigh), sreAndManager())
	s, _ = Cast(s, vote("bob", Deny, "sre"))
	if s.Outcome.Status != Denied {
		t.Fatalf("deny at threshold 1: %v", s.Outcome.Status)
	}
	if n, err := Cast(s, vote("carol", Approve, "manager")); !errors.Is(err, ErrResolved) || n.Outcome.Status != Denied {
		t.Fatalf("approve after denial: %v %v", n.Outcome.Status, err)
	}

	// After expiry.
	s = Expire(open(t, req(ImpactHigh), sreAndManager()), t0.Add(time.Hour))
	if s.Outcome.Status != Expired {
		t.Fatalf("Expire: %v", s.Outcome.Status)
	}
	if n, err := Cast(s, vote("bob", Approve, "sre")); !errors.Is(err, ErrResolved) || len(n.Votes) != 0 {
		t.Fatalf("vote after expiry: %v %v", n.Outcome.Status, err)
	}
}

func TestVoteAfterDeadlineRefused(t *testing.T) {
	s := open(t, req(ImpactHigh), Rules{})
	for _, at := range []time.Time{s.Request.Expires, s.Request.Expires.Add(time.Second)} {
		v := vote("bob", Approve)
		v.At = at
		n, err := Cast(s, v)
		if !errors.Is(err, ErrExpired) || len(n.Votes) != 0 {
			t.Fatalf("vote at %s: %v", at, err)
		}
	}
	// Expire before the deadline does nothing; a resolved request never expires.
	if Expire(s, s.Request.Expires.Add(-time.Nanosecond)).Outcome.Status != Pending {
		t.Fatal("expired before the deadline")
	}
	a, _ := Cast(s, vote("bob", Approve))
	if Expire(a, t0.Add(time.Hour)).Outcome.Status != Approved {
		t.Fatal("an approved request expired")
	}
}

func TestReviewerOutsideFilterRefused(t *testing.T) {
	s := open(t, req(ImpactHigh), sreAndManager())
	n, err := Cast(s, vote("mallory", Approve, "finance"))
	if !errors.Is(err, ErrNotEligible) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"peer: role approver and group sre", "manager: group manager", "mallory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if len(n.Votes) != 0 {
		t.Fatal("vote counted")
	}
	// The role matters too: an sre without the approver role is not a peer.
	v := vote("eve", Deny, "sre")
	v.Roles = []string{"auditor"}
	if _, err := Cast(s, v); !errors.Is(err, ErrNotEligible) {
		t.Fatalf("sre without role approver: %v", err)
	}
	// Default rule: the approver role is required.
	v = vote("eve", Approve)
	v.Roles = []string{"proposer"}
	if _, err := Cast(open(t, req(ImpactHigh), Rules{}), v); !errors.Is(err, ErrNotEligible) {
		t.Fatalf("default rule, no approver role: %v", err)
	}
}

func TestInvalidVotesRefused(t *testing.T) {
	s := open(t, req(ImpactHigh), Rules{})
	for name, v := range map[string]Vote{
		"no approver":    {Roles: []string{"approver"}, Decision: Approve, At: t0.Add(time.Minute)},
		"bad decision":   {Approver: "bob", Roles: []string{"approver"}, Decision: "maybe", At: t0.Add(time.Minute)},
		"before created": {Approver: "bob", Roles: []string{"approver"}, Decision: Approve, At: t0.Add(-time.Minute)},
	} {
		if n, err := Cast(s, v); !errors.Is(err, ErrInvalidVote) || len(n.Votes) != 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// --- semantics ---

func TestSemantics(t *testing.T) {
	critical2 := Rules{}
	tests := []struct {
		name    string
		impact  string
		rules   Rules
		votes   []Vote
		want    Status
		explain string // a substring of the explanation
	}{
		{"two sres leave it pending", ImpactHigh, sreAndManager(),
			[]Vote{vote("bob", Approve, "sre"), vote("dan", Approve, "sre")}, Pending,
			`set 2 not satisfied: needs 1 more approver with group manager (rule "manager": 0 of 1)`},
		{"an sre and a manager approve", ImpactHigh, sreAndManager(),
			[]Vote{vote("bob", Approve, "sre"), vote("carol", Approve, "manager")}, Approved,
			`set 2 satisfied by rule "manager": approved by carol`},
		{"manager first, then sre", ImpactHigh, sreAndManager(),
			[]Vote{vote("carol", Approve, "manager"), vote("bob", Approve, "sre")}, Approved, "APPROVED"},
		{"one sre who is also a manager is one person", ImpactHigh, sreAndManager(),
			[]Vote{vote("bob", Approve, "sre", "manager")}, Pending, "cannot count for two sets"},
		{"sre+manager person and a second sre", ImpactHigh, sreAndManager(),
			[]Vote{vote("bob", Approve, "sre", "manager"), vote("dan", Approve, "sre")}, Approved, "APPROVED"},
		{"one deny at deny threshold 1 ends it", ImpactHigh, sreAndManager(),
			[]Vote{vote("carol", Approve, "manager"), vote("bob", Deny, "sre")}, Denied, `rule "peer" reached its deny threshold of 1: denied by bob`},
		{"a deny on a rule without deny threshold does not end it", ImpactHigh, sreAndManager(),
			[]Vote{vote("carol", Deny, "manager")}, Pending, "PENDING"},
		{"high default needs 1", ImpactHigh, Rules{}, []Vote{vote("bob", Approve)}, Approved, `rule "default"`},
		{"critical default needs 2 distinct: one is pending", ImpactCritical, critical2,
			[]Vote{vote("bob", Approve)}, Pending, `needs 1 more approver with role approver (rule "default": 1 of 2)`},
		{"critical default needs 2 distinct: two approve", ImpactCritical, critical2,
			[]Vote{vote("bob", Approve), vote("carol", Approve)}, Approved, "approved by bob, carol"},
		{"critical default: the same approver twice is one", ImpactCritical, critical2,
			[]Vote{vote("bob", Approve), vote("bob", Approve)}, Pending, "1 of 2"},
		{"approvals_required 3 raises the default", ImpactCritical, Rules{DefaultApprove: 3},
			[]Vote{vote("bob", Approve), vote("carol", Approve)}, Pending, "2 of 3"},
		{"default deny threshold 1", ImpactHigh, Rules{}, []Vote{vote("bob", Deny)}, Denied, "DENIED"},
		{"rules within a set are OR-ed", ImpactHigh, Rules{Sets: []Set{{Rules: []Rule{
			{Name: "two-sres", Approve: 2, Filter: Filter{Groups: []string{"sre"}}},
			{Name: "one-lead", Approve: 1, Filter: Filter{Groups: []string{"lead"}}},
		}}}}, []Vote{vote("dan", Approve, "lead")}, Approved, `rule "one-lead"`},
		{"deny needs distinct deniers", ImpactHigh, Rules{Sets: []Set{{Rules: []Rule{
			{Name: "r", Approve: 3, Deny: 2, Filter: Filter{Roles: []string{"approver"}}},
		}}}}, []Vote{vote("bob", Deny), vote("bob", Deny)}, Pending, "0 of 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := Tally(req(tc.impact), tc.rules, tc.votes)
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != tc.want {
				t.Fatalf("status %s, want %s\n%s", out.Status, tc.want, strings.Join(out.Explanation, "\n"))
			}
			if all := strings.Join(out.Explanation, "\n"); !strings.Contains(all, tc.explain) {
				t.Fatalf("explanation lacks %q:\n%s", tc.explain, all)
			}
		})
	}
}

func TestRulesValidate(t *testing.T) {
	f := Filter{Roles: []string{"approver"}}
	for name, r := range map[string]Rules{
		"approve 0":     {Sets: []Set{{Rules: []Rule{{Name: "a", Approve: 0, Filter: f}}}}},
		"deny -1":       {Sets: []Set{{Rules: []Rule{{Name: "a", Approve: 1, Deny: -1, Filter: f}}}}},
		"empty filter":  {Sets: []Set{{Rules: []Rule{{Name: "a", Approve: 1}}}}},
		"empty set":     {Sets: []Set{{}}},
		"dup names":     {Sets: []Set{{Rules: []Rule{{Name: "a", Approve: 1, Filter: f}}}, {Rules: []Rule{{Name: "a", Approve: 1, Filter: f}}}}},
		"reminder late": {ExpiresAfter: time.Minute, ReminderBefore: time.Minute},
	} {
		if err := r.Validate(); !errors.Is(err, ErrInvalidRules) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := NewState(req(ImpactHigh), r); err == nil {
			t.Errorf("%s: NewState accepted it", name)
		}
	}
	bad := req(ImpactHigh)
	bad.Proposer = ""
	if _, err := NewState(bad, Rules{}); err == nil {
		t.Error("a request without proposer was accepted")
	}
	bad = req(ImpactHigh)
	bad.Expires = bad.Created
	if _, err := NewState(bad, Rules{}); err == nil {
		t.Error("a request expiring at creation was accepted")
	}
}

// Cast must not alias the caller's state: a refused or accepted vote leaves
// the state passed in as it was.
func TestCastDoesNotMutateInput(t *testing.T) {
	s := open(t, req(ImpactCritical), Rules{})
	a, _ := Cast(s, vote("bob", Approve))
	b1, _ := Cast(a, vote("carol", Approve))
	b2, _ := Cast(a, vote("dan", Deny))
	if len(a.Votes) != 1 || a.Outcome.Status != Pending {
		t.Fatalf("input state changed: %+v", a)
	}
	if b1.Votes[1].Approver != "carol" || b2.Votes[1].Approver != "dan" || b1.Outcome.Status != Approved || b2.Outcome.Status != Denied {
		t.Fatalf("branches share storage: %+v / %+v", b1.Votes, b2.Votes)
	}
}
