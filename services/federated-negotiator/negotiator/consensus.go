package negotiator

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	qc "github.com/decision-fabric/fabric/internal/quorum"
)

// This file holds the consensus rules as pure functions: no clock, no I/O, no
// randomness. The round loop (run.go) and the tests call them with the votes
// of one round.
//
// Counting rules, the same for every quorum rule:
//
//   - Only ACCEPT counts for the offer on the table. A COUNTER is not an accept,
//     even if its manifest equals the offer: it shapes the next round's offer.
//   - ABSTAIN takes the region out of the denominator (count and weight): a
//     region with no position neither helps nor blocks. When every region
//     abstains nothing can be agreed.
//   - A region that has not answered yet stays in the denominator; in the best
//     case it accepts. A vote from a region that is not expected is ignored,
//     and only a region's first vote in the round counts.
//   - Every rule needs at least one ACCEPT.
//
// With N expected regions, B abstentions, D = N-B and A accepts:
//
//	majority:   2·A > D            (5 regions, 2 reject: 3 > 2.5, AGREED)
//	two_thirds: 3·A ≥ 2·D          (6 regions: 4 accepts)
//	unanimous:  A = D              (5 regions, 1 abstains: the other 4 accept)
//	weighted:   2·W(A) > W(D)      (weights 3,2,3,2,1: accepts holding 6 of 11)

// RegionWeight is one expected voter and its weight (used by QUORUM_RULE_WEIGHTED).
type RegionWeight struct {
	Region string
	Weight int64
}

// Outcome is what a round's votes decide.
type Outcome int

// Outcomes of Tally.
const (
	// OutcomePending: votes are missing and could still change the result.
	OutcomePending Outcome = iota
	// OutcomeAgreed: a quorum accepted the offer. Final: later votes cannot undo it.
	OutcomeAgreed
	// OutcomeRejected: no quorum is possible at this offer, even if every
	// counter-offer were accepted and every missing vote were an accept.
	OutcomeRejected
	// OutcomeUndecided: every vote is in and the offer has no quorum, but the
	// accepts and counters together could reach one: merge the counters into
	// the next round's offer.
	OutcomeUndecided
)

func (o Outcome) String() string {
	switch o {
	case OutcomePending:
		return "pending"
	case OutcomeAgreed:
		return "agreed"
	case OutcomeRejected:
		return "rejected"
	case OutcomeUndecided:
		return "undecided"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// tally is the count of one round.
type tally struct {
	n, accept, counter, reject, abstain, pending int   // region counts
	total, acceptW, counterW, abstainW, pendingW int64 // weights
	rejecters                                    []string
	waiting                                      []string
}

func count(regions []RegionWeight, votes []Vote) tally {
	first := map[string]Vote{}
	for _, v := range votes {
		if _, seen := first[v.Region]; !seen {
			first[v.Region] = v
		}
	}
	var t tally
	for _, r := range regions {
		t.n++
		t.total += r.Weight
		v, ok := first[r.Region]
		switch {
		case !ok:
			t.pending++
			t.pendingW += r.Weight
			t.waiting = append(t.waiting, r.Region)
		case v.Verdict == negotiatorv1.Verdict_VERDICT_ACCEPT:
			t.accept++
			t.acceptW += r.Weight
		case v.Verdict == negotiatorv1.Verdict_VERDICT_COUNTER:
			t.counter++
			t.counterW += r.Weight
		case v.Verdict == negotiatorv1.Verdict_VERDICT_ABSTAIN:
			t.abstain++
			t.abstainW += r.Weight
		default: // REJECT, and anything unknown, is a refusal
			t.reject++
			t.rejecters = append(t.rejecters, r.Region)
		}
	}
	return t
}

// quorum reports whether yes regions (of weight yesW) satisfy rule when d
// regions (of weight dW) take a position. The rules live in quorum.Met, which
// certificate verification uses too; UNSPECIFIED (resolved before a
// negotiation starts) is majority there.
func quorum(rule negotiatorv1.QuorumRule, yes int, yesW int64, d int, dW int64) bool {
	return qc.Met(qc.RuleName(rule), yes, yesW, d, dW)
}

// Tally decides one round from its votes under rule. regions are the expected
// voters; votes may be partial. The reason explains the outcome in words.
// Agreed and Rejected are final for the round: more votes cannot change them.
func Tally(rule negotiatorv1.QuorumRule, regions []RegionWeight, votes []Vote) (Outcome, string) {
	t := count(regions, votes)
	d, dW := t.n-t.abstain, t.total-t.abstainW
	name := qc.RuleName(rule)
	accepted := fmt.Sprintf("%d of %d voting regions accepted", t.accept, d)
	if rule == negotiatorv1.QuorumRule_QUORUM_RULE_WEIGHTED {
		accepted = fmt.Sprintf("accepting regions hold weight %d of %d", t.acceptW, dW)
	}
	switch {
	case d == 0:
		return OutcomeRejected, "every region abstained; nothing to agree on"
	case quorum(rule, t.accept, t.acceptW, d, dW):
		return OutcomeAgreed, fmt.Sprintf("%s quorum reached: %s", name, accepted)
	case !quorum(rule, t.accept+t.counter+t.pending, t.acceptW+t.counterW+t.pendingW, d, dW):
		return OutcomeRejected, fmt.Sprintf("%s quorum impossible: %d of %d voting regions rejected (%s)",
			name, t.reject, d, strings.Join(t.rejecters, ", "))
	case t.pending > 0:
		return OutcomePending, fmt.Sprintf("waiting for %d of %d regions (%s)", t.pending, t.n, strings.Join(t.waiting, ", "))
	default:
		return OutcomeUndecided, fmt.Sprintf("no %s quorum for the offer (%s); %d counter-offer(s) may reach one",
			name, accepted, t.counter)
	}
}

// MergeCounters returns the next round's offer: a copy of offer in which each
// numeric top-level parameter takes the largest value a quorum (under rule)
// supports, and the changes made ("parameters.replicas: 12 -> 10"). No change
// means the counters cannot move the offer.
//
// A region supports a value v of parameter p when v is at most its limit:
// the offered value for an ACCEPT, the countered value for a COUNTER (the
// offered value if the counter leaves p alone). REJECT, ABSTAIN and missing
// votes support nothing; ABSTAIN leaves the denominator as in Tally. The
// assumption is monotone acceptance: a region that accepts a value accepts
// every smaller one (capacity, cost and blast radius all shrink with it).
// Candidates are the limits, tried from the largest down.
//
// Example, majority of 5, offer replicas=12: ACCEPT (12), ACCEPT (12),
// COUNTER 10, COUNTER 8, COUNTER 6. 12 has 2 supporters, 10 has 3 (the two
// accepts and the 10): next offer replicas=10. Under unanimous it would be 6,
// the only value all five support. Under weighted with weights 1,1,3,1,1 the
// value is 10 again (weight 5 of 7 supports it).
//
// Only numeric parameters present in the offer are merged; a counter's other
// changes (action, target, regions, non-numeric parameters) are not, and each
// parameter is merged on its own, so the merged offer is a new proposal the
// regions vote on again, not a promise that it passes.
func MergeCounters(rule negotiatorv1.QuorumRule, regions []RegionWeight, offer *typesv1.Manifest, votes []Vote) (*typesv1.Manifest, []string) {
	next := proto.Clone(offer).(*typesv1.Manifest)
	params := offer.GetParameters().GetFields()
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if _, ok := v.GetKind().(*structpb.Value_NumberValue); ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)

	first := map[string]Vote{}
	for _, v := range votes {
		if _, seen := first[v.Region]; !seen {
			first[v.Region] = v
		}
	}
	t := count(regions, votes)
	d, dW := t.n-t.abstain, t.total-t.abstainW

	var changes []string
	for _, k := range keys {
		offered := params[k].GetNumberValue()
		type limit struct {
			value  float64
			weight int64
		}
		var limits []limit
		for _, r := range regions {
			v, ok := first[r.Region]
			if !ok {
				continue
			}
			switch v.Verdict {
			case negotiatorv1.Verdict_VERDICT_ACCEPT:
				limits = append(limits, limit{offered, r.Weight})
			case negotiatorv1.Verdict_VERDICT_COUNTER:
				val := offered
				if cv, ok := v.Counter.GetParameters().GetFields()[k].GetKind().(*structpb.Value_NumberValue); ok && !math.IsNaN(cv.NumberValue) {
					val = cv.NumberValue
				}
				limits = append(limits, limit{val, r.Weight})
			}
		}
		candidates := make([]float64, 0, len(limits))
		for _, l := range limits {
			candidates = append(candidates, l.value)
		}
		slices.Sort(candidates)
		candidates = slices.Compact(candidates)
		for i := len(candidates) - 1; i >= 0; i-- {
			c := candidates[i]
			yes, yesW := 0, int64(0)
			for _, l := range limits {
				if l.value >= c {
					yes++
					yesW += l.weight
				}
			}
			if !quorum(rule, yes, yesW, d, dW) {
				continue
			}
			if c != offered {
				next.Parameters.Fields[k] = structpb.NewNumberValue(c)
				changes = append(changes, fmt.Sprintf("parameters.%s: %s -> %s", k, formatNumber(offered), formatNumber(c)))
			}
			break
		}
	}
	return next, changes
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
