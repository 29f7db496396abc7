package approval

import (
	"fmt"
	"slices"
	"strings"
)

// Outcome is where a request stands and why, in words a person can read.
type Outcome struct {
	Status Status
	// Sets, in policy order: satisfied or not, by whom, what is missing.
	Sets []SetResult
	// DeniedBy names the rule whose deny threshold was met (Denied only),
	// Deniers who met it.
	DeniedBy string
	Deniers  []string
	// Explanation: one line per set, then the verdict.
	Explanation []string
}

// SetResult is one set's standing.
type SetResult struct {
	Satisfied bool
	Rule      string   // the rule that satisfies it (when Satisfied)
	By        []string // the distinct approvers counted for it
	Missing   string   // what is still needed (when not Satisfied)
}

type voter struct {
	name          string
	roles, groups []string
}

// evaluate computes the outcome of the accepted votes. It depends on the set
// of votes, not their order (vote order only picks which of several
// sufficient approvers is named).
func evaluate(req Request, sets []Set, votes []Vote) Outcome {
	var approvers, deniers []voter
	for _, v := range votes {
		vt := voter{v.Approver, v.Roles, v.Groups}
		if v.Decision == Deny {
			deniers = append(deniers, vt)
		} else {
			approvers = append(approvers, vt)
		}
	}
	o := Outcome{Status: Pending}

	// Deny first: one rule's deny threshold ends the request.
	for _, set := range sets {
		for _, r := range set.Rules {
			if r.Deny < 1 {
				continue
			}
			by := matching(deniers, r.Filter)
			if len(by) >= r.Deny {
				o.Status = Denied
				o.DeniedBy = r.Name
				o.Deniers = names(deniers, by)
				o.Explanation = []string{fmt.Sprintf("DENIED: rule %q reached its deny threshold of %d: denied by %s",
					r.Name, r.Deny, strings.Join(o.Deniers, ", "))}
				return o
			}
		}
	}

	// Each set on its own: which rules have enough matching approvers.
	cands := make([][]int, len(sets))
	pools := make([][][]int, len(sets))
	o.Sets = make([]SetResult, len(sets))
	allAlone := true
	for i, set := range sets {
		pools[i] = make([][]int, len(set.Rules))
		for j, r := range set.Rules {
			pools[i][j] = matching(approvers, r.Filter)
			if len(pools[i][j]) >= r.Approve {
				cands[i] = append(cands[i], j)
			}
		}
		if len(cands[i]) == 0 {
			allAlone = false
			o.Sets[i].Missing = missing(set, pools[i])
		}
	}

	if allAlone {
		if choice, assign, ok := assignDistinct(sets, cands, pools); ok {
			o.Status = Approved
			for i := range sets {
				o.Sets[i] = SetResult{Satisfied: true, Rule: sets[i].Rules[choice[i]].Name, By: names(approvers, assign[i])}
			}
		} else {
			// Every set has enough approvals alone, not from distinct people.
			for i, set := range sets {
				o.Sets[i].Missing = "enough approvals on its own, but the same approver cannot count for two sets: needs another approver with " + alternatives(set)
			}
		}
	}
	// Sets satisfied alone while another is missing: say who counts.
	if o.Status == Pending {
		for i, set := range sets {
			if len(cands[i]) > 0 && !allAlone {
				j := cands[i][0]
				o.Sets[i] = SetResult{Satisfied: true, Rule: set.Rules[j].Name, By: names(approvers, pools[i][j][:set.Rules[j].Approve])}
			}
		}
	}

	for i, sr := range o.Sets {
		label := fmt.Sprintf("set %d", i+1)
		if sr.Satisfied {
			o.Explanation = append(o.Explanation, fmt.Sprintf("%s satisfied by rule %q: approved by %s", label, sr.Rule, strings.Join(sr.By, ", ")))
		} else {
			o.Explanation = append(o.Explanation, fmt.Sprintf("%s not satisfied: %s", label, sr.Missing))
		}
	}
	if o.Status == Approved {
		o.Explanation = append(o.Explanation, fmt.Sprintf("APPROVED: every set (%d) satisfied by distinct approvers, none of them the proposer %s", len(sets), req.Proposer))
	} else {
		o.Explanation = append(o.Explanation, "PENDING: waiting for approvers")
	}
	return o
}

// matching returns the indices of the voters f matches.
func matching(vs []voter, f Filter) []int {
	var out []int
	for i, v := range vs {
		if f.Matches(v.roles, v.groups) {
			out = append(out, i)
		}
	}
	return out
}

func names(vs []voter, idx []int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = vs[j].name
	}
	return out
}

// missing says what one unsatisfied set needs: the cheapest of its rules
// first, then the alternatives.
func missing(set Set, pools [][]int) string {
	var alts []string
	for j, r := range set.Rules {
		need := r.Approve - len(pools[j])
		s := "s"
		if need == 1 {
			s = ""
		}
		alts = append(alts, fmt.Sprintf("needs %d more approver%s with %s (rule %q: %d of %d)", need, s, r.Filter, r.Name, len(pools[j]), r.Approve))
	}
	return strings.Join(alts, ", or ")
}

func alternatives(set Set) string {
	var alts []string
	for _, r := range set.Rules {
		alts = append(alts, r.Filter.String())
	}
	return strings.Join(alts, ", or ")
}

// assignDistinct looks for one rule per set and an assignment of distinct
// approvers to every chosen rule's threshold. The number of combinations is
// bounded by MaxRulesPerSet^MaxSets, the matching by MaxSets*MaxThreshold slots.
func assignDistinct(sets []Set, cands [][]int, pools [][][]int) (choice []int, assign [][]int, ok bool) {
	choice = make([]int, len(sets))
	var try func(i int) bool
	try = func(i int) bool {
		if i == len(sets) {
			assign, ok = match(sets, choice, pools)
			return ok
		}
		for _, j := range cands[i] {
			choice[i] = j
			if try(i + 1) {
				return true
			}
		}
		return false
	}
	if try(0) {
		return choice, assign, true
	}
	return nil, nil, false
}

// match is a bipartite matching (Kuhn's augmenting paths) of threshold slots
// to approvers, each approver filling at most one slot.
func match(sets []Set, choice []int, pools [][][]int) ([][]int, bool) {
	type slot struct{ set, rule int }
	var slots []slot
	for i, j := range choice {
		for range sets[i].Rules[j].Approve {
			slots = append(slots, slot{i, j})
		}
	}
	owner := map[int]int{} // approver -> slot
	var augment func(s int, seen map[int]bool) bool
	augment = func(s int, seen map[int]bool) bool {
		for _, a := range pools[slots[s].set][slots[s].rule] {
			if seen[a] {
				continue
			}
			seen[a] = true
			if o, taken := owner[a]; !taken || augment(o, seen) {
				owner[a] = s
				return true
			}
		}
		return false
	}
	for s := range slots {
		if !augment(s, map[int]bool{}) {
			return nil, false
		}
	}
	bySlot := make([]int, len(slots))
	for a, s := range owner {
		bySlot[s] = a
	}
	assign := make([][]int, len(sets))
	for s, sl := range slots {
		assign[sl.set] = append(assign[sl.set], bySlot[s])
	}
	for i := range assign {
		slices.Sort(assign[i])
	}
	return assign, true
}
