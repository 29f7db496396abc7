package negotiator_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

const (
	majority  = negotiatorv1.QuorumRule_QUORUM_RULE_MAJORITY
	twoThirds = negotiatorv1.QuorumRule_QUORUM_RULE_TWO_THIRDS
	unanimous = negotiatorv1.QuorumRule_QUORUM_RULE_UNANIMOUS
	weighted  = negotiatorv1.QuorumRule_QUORUM_RULE_WEIGHTED

	accept  = negotiatorv1.Verdict_VERDICT_ACCEPT
	reject  = negotiatorv1.Verdict_VERDICT_REJECT
	counter = negotiatorv1.Verdict_VERDICT_COUNTER
	abstain = negotiatorv1.Verdict_VERDICT_ABSTAIN
)

var five = []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south"}

// regions gives the named regions weights (1 when weights is empty).
func regions(names []string, weights ...int64) []negotiator.RegionWeight {
	out := make([]negotiator.RegionWeight, len(names))
	for i, n := range names {
		out[i] = negotiator.RegionWeight{Region: n, Weight: 1}
		if len(weights) > 0 {
			out[i].Weight = weights[i]
		}
	}
	return out
}

// votes pairs the first len(verdicts) regions of names with verdicts.
func votes(names []string, verdicts ...negotiatorv1.Verdict) []negotiator.Vote {
	out := make([]negotiator.Vote, len(verdicts))
	for i, v := range verdicts {
		out[i] = negotiator.Vote{Region: names[i], Round: 1, Verdict: v}
		if v == counter {
			out[i].Counter = &typesv1.Manifest{Action: "scale", Target: "x"}
		}
	}
	return out
}

func TestTally(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		rule    negotiatorv1.QuorumRule
		weights []int64
		votes   []negotiatorv1.Verdict
		want    negotiator.Outcome
		reason  string // substring
	}{
		// The acceptance case: 5 regions, 2 refuse.
		{"majority, 2 of 5 refuse", majority, nil, []negotiatorv1.Verdict{accept, accept, accept, reject, reject}, negotiator.OutcomeAgreed, "majority quorum reached: 3 of 5"},
		{"unanimous, 2 of 5 refuse", unanimous, nil, []negotiatorv1.Verdict{accept, accept, accept, reject, reject}, negotiator.OutcomeRejected, "rejected (us-west, ap-south)"},
		{"two thirds, 2 of 5 refuse", twoThirds, nil, []negotiatorv1.Verdict{accept, accept, accept, reject, reject}, negotiator.OutcomeRejected, "two_thirds quorum impossible"},
		{"two thirds, 1 of 5 refuses", twoThirds, nil, []negotiatorv1.Verdict{accept, accept, accept, accept, reject}, negotiator.OutcomeAgreed, ""},

		// Early decisions with votes missing.
		{"majority decided before all answer", majority, nil, []negotiatorv1.Verdict{accept, accept, accept}, negotiator.OutcomeAgreed, ""},
		{"majority impossible before all answer", majority, nil, []negotiatorv1.Verdict{reject, reject, reject}, negotiator.OutcomeRejected, ""},
		{"still open", majority, nil, []negotiatorv1.Verdict{accept, reject}, negotiator.OutcomePending, "waiting for 3 of 5 regions (us-east, us-west, ap-south)"},
		{"no votes yet", unanimous, nil, nil, negotiator.OutcomePending, ""},
		{"unanimous fails on the first refusal", unanimous, nil, []negotiatorv1.Verdict{reject}, negotiator.OutcomeRejected, ""},

		// Counters are not accepts, but keep agreement possible.
		{"counters keep it open", majority, nil, []negotiatorv1.Verdict{accept, counter, counter, reject, reject}, negotiator.OutcomeUndecided, "2 counter-offer(s)"},
		{"counter waits for the rest", majority, nil, []negotiatorv1.Verdict{counter, counter}, negotiator.OutcomePending, ""},
		{"counters cannot reach unanimity past a refusal", unanimous, nil, []negotiatorv1.Verdict{accept, counter, counter, counter, reject}, negotiator.OutcomeRejected, ""},
		{"all counter", unanimous, nil, []negotiatorv1.Verdict{counter, counter, counter, counter, counter}, negotiator.OutcomeUndecided, ""},

		// Abstentions leave the denominator.
		{"majority among non-abstainers", majority, nil, []negotiatorv1.Verdict{accept, accept, abstain, abstain, reject}, negotiator.OutcomeAgreed, "2 of 3 voting regions"},
		{"unanimous among non-abstainers", unanimous, nil, []negotiatorv1.Verdict{accept, abstain, accept, accept, accept}, negotiator.OutcomeAgreed, ""},
		{"tie is not a majority", majority, nil, []negotiatorv1.Verdict{accept, reject, abstain, abstain, abstain}, negotiator.OutcomeRejected, ""},
		{"everyone abstains", majority, nil, []negotiatorv1.Verdict{abstain, abstain, abstain, abstain, abstain}, negotiator.OutcomeRejected, "every region abstained"},
		{"one accept and the rest abstain", unanimous, nil, []negotiatorv1.Verdict{abstain, abstain, accept, abstain, abstain}, negotiator.OutcomeAgreed, ""},

		// Weighted: weights 3,2,3,2,1 (total 11).
		{"weighted: 6 of 11", weighted, []int64{3, 2, 3, 2, 1}, []negotiatorv1.Verdict{accept, reject, accept, reject, reject}, negotiator.OutcomeAgreed, "weight 6 of 11"},
		{"weighted: 5 of 11", weighted, []int64{3, 2, 3, 2, 1}, []negotiatorv1.Verdict{accept, accept, reject, reject, reject}, negotiator.OutcomeRejected, ""},
		{"weighted: heavy minority of regions wins", weighted, []int64{5, 1, 1, 1, 1}, []negotiatorv1.Verdict{accept, reject, reject, reject, reject}, negotiator.OutcomeAgreed, "weight 5 of 9"},
		{"weighted: abstained weight leaves", weighted, []int64{3, 2, 3, 2, 1}, []negotiatorv1.Verdict{accept, abstain, abstain, reject, abstain}, negotiator.OutcomeAgreed, "weight 3 of 5"},
		{"weighted: pending weight keeps it open", weighted, []int64{3, 2, 3, 2, 1}, []negotiatorv1.Verdict{accept, reject}, negotiator.OutcomePending, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, reason := negotiator.Tally(tc.rule, regions(five, tc.weights...), votes(five, tc.votes...))
			require.Equal(t, tc.want, got, reason)
			require.Contains(t, reason, tc.reason)
		})
	}
}

func TestTallyIgnoresStrangersAndSecondVotes(t *testing.T) {
	t.Parallel()
	vs := votes(five, accept, accept)
	vs = append(vs,
		negotiator.Vote{Region: "mars-1", Verdict: accept},  // not expected
		negotiator.Vote{Region: "eu-west", Verdict: accept}, // second vote
		negotiator.Vote{Region: "eu-central", Verdict: reject},
	)
	got, _ := negotiator.Tally(majority, regions(five), vs)
	require.Equal(t, negotiator.OutcomePending, got, "still 2 accepts of 5")
}

func offer(replicas float64) *typesv1.Manifest {
	return &typesv1.Manifest{Action: "scale", Target: "serviceX", Impact: "medium",
		Parameters: &structpb.Struct{Fields: map[string]*structpb.Value{
			"replicas": structpb.NewNumberValue(replicas),
			"tier":     structpb.NewStringValue("gold"),
		}}}
}

// counterAt is a COUNTER of region with replicas n.
func counterAt(region string, n float64) negotiator.Vote {
	return negotiator.Vote{Region: region, Verdict: counter, Counter: offer(n)}
}

func TestMergeCounters(t *testing.T) {
	t.Parallel()
	acc := func(r string) negotiator.Vote { return negotiator.Vote{Region: r, Verdict: accept} }
	rej := func(r string) negotiator.Vote { return negotiator.Vote{Region: r, Verdict: reject} }
	abs := func(r string) negotiator.Vote { return negotiator.Vote{Region: r, Verdict: abstain} }
	for _, tc := range []struct {
		name    string
		rule    negotiatorv1.QuorumRule
		weights []int64
		votes   []negotiator.Vote
		want    float64
		changed bool
	}{
		// The documented example: 12 has 2 supporters, 10 has 3.
		{"majority takes the largest value 3 of 5 support", majority, nil,
			[]negotiator.Vote{acc("eu-west"), acc("eu-central"), counterAt("us-east", 10), counterAt("us-west", 8), counterAt("ap-south", 6)}, 10, true},
		{"unanimous takes the value all support", unanimous, nil,
			[]negotiator.Vote{acc("eu-west"), acc("eu-central"), counterAt("us-east", 10), counterAt("us-west", 8), counterAt("ap-south", 6)}, 6, true},
		{"two thirds needs 4 of 5", twoThirds, nil,
			[]negotiator.Vote{acc("eu-west"), acc("eu-central"), counterAt("us-east", 10), counterAt("us-west", 8), counterAt("ap-south", 6)}, 8, true},
		{"weighted follows the weight", weighted, []int64{1, 1, 3, 1, 1},
			[]negotiator.Vote{acc("eu-west"), acc("eu-central"), counterAt("us-east", 10), counterAt("us-west", 8), counterAt("ap-south", 6)}, 10, true},
		{"refusals support nothing", majority, nil,
			[]negotiator.Vote{rej("eu-west"), rej("eu-central"), counterAt("us-east", 10), counterAt("us-west", 8), counterAt("ap-south", 6)}, 6, true},
		{"abstentions leave the denominator", majority, nil,
			[]negotiator.Vote{abs("eu-west"), abs("eu-central"), counterAt("us-east", 10), counterAt("us-west", 8), rej("ap-south")}, 8, true},
		{"an upward counter needs a quorum too", majority, nil,
			[]negotiator.Vote{counterAt("eu-west", 20), counterAt("eu-central", 20), counterAt("us-east", 20), acc("us-west"), acc("ap-south")}, 20, true},
		{"no quorum for any value keeps the offer", majority, nil,
			[]negotiator.Vote{counterAt("eu-west", 4), rej("eu-central"), rej("us-east"), rej("us-west"), rej("ap-south")}, 12, false},
		{"a quorum already accepts the offer", majority, nil,
			[]negotiator.Vote{acc("eu-west"), acc("eu-central"), acc("us-east"), counterAt("us-west", 2), counterAt("ap-south", 2)}, 12, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := offer(12)
			orig := proto.Clone(in)
			next, changes := negotiator.MergeCounters(tc.rule, regions(five, tc.weights...), in, tc.votes)
			require.True(t, proto.Equal(orig, in), "the offer is not modified")
			require.Equal(t, tc.want, next.GetParameters().GetFields()["replicas"].GetNumberValue())
			require.Equal(t, "gold", next.GetParameters().GetFields()["tier"].GetStringValue(), "non-numeric parameters stay")
			require.Equal(t, tc.changed, len(changes) > 0, changes)
			if tc.changed {
				require.Contains(t, changes[0], "parameters.replicas: 12 -> ")
			}
		})
	}
}

func TestMergeCountersLeavesOtherChanges(t *testing.T) {
	t.Parallel()
	c := offer(8)
	c.Target = "serviceY"
	c.Parameters.Fields["tier"] = structpb.NewStringValue("silver")
	c.Parameters.Fields["extra"] = structpb.NewNumberValue(3)
	vs := []negotiator.Vote{
		{Region: "eu-west", Verdict: counter, Counter: c},
		{Region: "eu-central", Verdict: counter, Counter: c},
		{Region: "us-east", Verdict: counter, Counter: c},
	}
	next, changes := negotiator.MergeCounters(majority, regions(five[:3]), offer(12), vs)
	require.Equal(t, []string{"parameters.replicas: 12 -> 8"}, changes)
	require.Equal(t, "serviceX", next.GetTarget())
	require.Equal(t, "gold", next.GetParameters().GetFields()["tier"].GetStringValue())
	require.NotContains(t, next.GetParameters().GetFields(), "extra", "only parameters of the offer are merged")
}

func TestMergeCountersWithoutNumbers(t *testing.T) {
	t.Parallel()
	in := &typesv1.Manifest{Action: "configure", Target: "x"}
	next, changes := negotiator.MergeCounters(majority, regions(five), in, []negotiator.Vote{counterAt("eu-west", 3)})
	require.Empty(t, changes)
	require.True(t, proto.Equal(in, next))
}

func TestRuleNames(t *testing.T) {
	t.Parallel()
	for _, r := range []negotiatorv1.QuorumRule{majority, twoThirds, unanimous, weighted} {
		got, err := qc.ParseRule(qc.RuleName(r))
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	for _, bad := range []string{"", "unspecified", "MAJORITY", "most"} {
		_, err := qc.ParseRule(bad)
		require.Error(t, err, bad)
	}
}
