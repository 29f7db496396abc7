package approval

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The property and fuzz tests draw rules and votes from a byte string and
// check the outcome against an independent brute-force oracle.

var (
	propRoles  = []string{"approver", "auditor", "proposer"}
	propGroups = []string{"sre", "manager", "lead", "finance"}
	propPeople = []string{"alice", "bob", "carol", "dan", "erin", "frank", "gina", "hal"}
)

type byteSrc struct {
	b []byte
	i int
}

func (s *byteSrc) next() int {
	if s.i >= len(s.b) {
		return 0
	}
	s.i++
	return int(s.b[s.i-1])
}

func (s *byteSrc) pick(n int) int { return s.next() % n }

func (s *byteSrc) subset(all []string) []string {
	m := s.next()
	var out []string
	for i, x := range all {
		if m&(1<<i) != 0 {
			out = append(out, x)
		}
	}
	return out
}

// generate builds a request (proposer alice), rules and votes.
func generate(b []byte) (Request, Rules, []Vote) {
	s := &byteSrc{b: b}
	impact := []string{ImpactHigh, ImpactCritical}[s.pick(2)]
	r := Request{ProposalID: "p", Tenant: "t1", Proposer: "alice", Impact: impact, Created: t0, Expires: t0.Add(time.Hour)}
	var rules Rules
	rules.DefaultApprove = s.pick(3)
	nsets := s.pick(4) // 0 = the default rule
	for i := range nsets {
		var set Set
		for j := range 1 + s.pick(3) {
			f := Filter{Roles: s.subset(propRoles[:2]), Groups: s.subset(propGroups)}
			if len(f.Roles) == 0 && len(f.Groups) == 0 {
				f.Roles = []string{"approver"}
			}
			set.Rules = append(set.Rules, Rule{
				Name:    string(rune('a'+i)) + string(rune('0'+j)),
				Approve: 1 + s.pick(3),
				Deny:    s.pick(3),
				Filter:  f,
			})
		}
		rules.Sets = append(rules.Sets, set)
	}
	var votes []Vote
	for range s.pick(10) {
		d := Approve
		if s.pick(4) == 0 {
			d = Deny
		}
		votes = append(votes, Vote{
			Approver: propPeople[s.pick(len(propPeople))],
			Roles:    s.subset(propRoles),
			Groups:   s.subset(propGroups),
			Decision: d,
			At:       t0.Add(time.Duration(s.pick(70)) * time.Minute), // some after the deadline
		})
	}
	return r, rules, votes
}

// oracle decides a set of accepted votes by brute force: DENIED when a deny
// threshold is met, APPROVED when some assignment of approvers to sets (each
// approver to at most one set) satisfies every set.
func oracle(r Request, rules Rules, accepted []Vote) Status {
	sets := rules.Effective(r.Impact)
	var app []Vote
	for _, set := range sets {
		for _, ru := range set.Rules {
			n := 0
			for _, v := range accepted {
				if v.Decision == Deny && ru.Filter.Matches(v.Roles, v.Groups) {
					n++
				}
			}
			if ru.Deny > 0 && n >= ru.Deny {
				return Denied
			}
		}
	}
	for _, v := range accepted {
		if v.Decision == Approve {
			app = append(app, v)
		}
	}
	assign := make([]int, len(app)) // -1 = unused, else set index
	var rec func(k int) bool
	rec = func(k int) bool {
		if k == len(app) {
			for i, set := range sets {
				ok := false
				for _, ru := range set.Rules {
					n := 0
					for a, v := range app {
						if assign[a] == i && ru.Filter.Matches(v.Roles, v.Groups) {
							n++
						}
					}
					ok = ok || n >= ru.Approve
				}
				if !ok {
					return false
				}
			}
			return true
		}
		for i := -1; i < len(sets); i++ {
			assign[k] = i
			if rec(k + 1) {
				return true
			}
		}
		return false
	}
	if rec(0) {
		return Approved
	}
	return Pending
}

// checkTally replays votes and checks every invariant; it returns the
// outcome and whether some vote was refused because the request was resolved.
func checkTally(t *testing.T, r Request, rules Rules, votes []Vote) (Outcome, bool) {
	t.Helper()
	s, err := NewState(r, rules)
	if err != nil {
		t.Fatalf("NewState: %v", err)
	}
	sets := rules.Effective(r.Impact)
	resolvedRefusal := false
	seen := map[string]bool{}
	for _, v := range votes {
		before := s
		n, err := Cast(s, v)
		if err != nil {
			if !slices.Equal(namesOf(n.Votes), namesOf(before.Votes)) || n.Outcome.Status != before.Outcome.Status {
				t.Fatalf("refused vote (%v) changed the state", err)
			}
			switch {
			case errors.Is(err, ErrResolved):
				resolvedRefusal = true
				if before.Outcome.Status == Pending {
					t.Fatalf("ErrResolved on a pending request")
				}
			case errors.Is(err, ErrSelfApproval):
				if v.Approver != r.Proposer {
					t.Fatalf("ErrSelfApproval for %s", v.Approver)
				}
			case errors.Is(err, ErrDoubleVote):
				if !seen[v.Approver] {
					t.Fatalf("ErrDoubleVote for a first vote")
				}
			case errors.Is(err, ErrExpired):
				if v.At.Before(r.Expires) {
					t.Fatalf("ErrExpired before the deadline")
				}
			case errors.Is(err, ErrNotEligible):
				for _, set := range sets {
					for _, ru := range set.Rules {
						if ru.Filter.Matches(v.Roles, v.Groups) {
							t.Fatalf("ErrNotEligible but %s matches rule %s", v.Approver, ru.Name)
						}
					}
				}
			default:
				t.Fatalf("unexpected error %v", err)
			}
			continue
		}
		// Accepted: everything that must be refused was refused.
		if before.Outcome.Status != Pending || v.Approver == r.Proposer || seen[v.Approver] || !v.At.Before(r.Expires) {
			t.Fatalf("vote accepted that must be refused: %+v (status %s)", v, before.Outcome.Status)
		}
		seen[v.Approver] = true
		s = n
		if got, want := s.Outcome.Status, oracle(r, rules, s.Votes); got != want {
			t.Fatalf("status %s, oracle %s; votes %+v rules %+v\n%v", got, want, s.Votes, sets, s.Outcome.Explanation)
		}
	}
	if s.Outcome.Status == Approved {
		used := map[string]bool{}
		for i, sr := range s.Outcome.Sets {
			var ru *Rule
			for k := range sets[i].Rules {
				if sets[i].Rules[k].Name == sr.Rule {
					ru = &sets[i].Rules[k]
				}
			}
			if !sr.Satisfied || ru == nil || len(sr.By) < ru.Approve {
				t.Fatalf("APPROVED with set %d unsatisfied: %+v", i, sr)
			}
			for _, who := range sr.By {
				v := findVote(s.Votes, who)
				if v == nil || v.Decision != Approve || who == r.Proposer || used[who] || !ru.Filter.Matches(v.Roles, v.Groups) {
					t.Fatalf("APPROVED counting %s for set %d (%+v): not a distinct, matching, non-proposer approval", who, i, sr)
				}
				used[who] = true
			}
		}
	}
	out, _, err := Tally(r, rules, votes)
	if err != nil || out.Status != s.Outcome.Status {
		t.Fatalf("Tally %s, Cast %s (%v)", out.Status, s.Outcome.Status, err)
	}
	return s.Outcome, resolvedRefusal
}

func namesOf(vs []Vote) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Approver+string(v.Decision))
	}
	return out
}

func findVote(vs []Vote, who string) *Vote {
	for i := range vs {
		if vs[i].Approver == who {
			return &vs[i]
		}
	}
	return nil
}

// checkOrder: with one vote per approver, the outcome does not depend on the
// order of the votes unless the request was resolved before the last one.
func checkOrder(t *testing.T, r Request, rules Rules, votes []Vote, rng *rand.Rand) {
	t.Helper()
	var uniq []Vote
	seen := map[string]bool{}
	for _, v := range votes {
		if !seen[v.Approver] {
			seen[v.Approver] = true
			uniq = append(uniq, v)
		}
	}
	a, ra := checkTally(t, r, rules, uniq)
	shuffled := slices.Clone(uniq)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b, rb := checkTally(t, r, rules, shuffled)
	if !ra && !rb && a.Status != b.Status {
		t.Fatalf("order changed the outcome: %s vs %s\n%+v\n%+v", a.Status, b.Status, uniq, shuffled)
	}
}

func TestTallyProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[Status]int{}
	for range 5000 {
		b := make([]byte, 96)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		r, rules, votes := generate(b)
		out, _ := checkTally(t, r, rules, votes)
		counts[out.Status]++
		checkOrder(t, r, rules, votes, rng)
	}
	// The generator must reach every outcome, or the property proves little.
	for _, st := range []Status{Pending, Approved, Denied} {
		if counts[st] < 50 {
			t.Errorf("only %d %s outcomes in 5000 runs: %v", counts[st], st, counts)
		}
	}
}

func FuzzTally(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 2, 1, 1, 0, 3, 0, 1, 2, 9, 1, 3, 1, 1, 0, 10, 2, 1, 2, 2, 0, 5})
	f.Add([]byte("some random approvals and denials of a critical proposal"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, rules, votes := generate(b)
		checkTally(t, r, rules, votes)
		checkOrder(t, r, rules, votes, rand.New(rand.NewPCG(uint64(len(b)), 7)))
	})
}
