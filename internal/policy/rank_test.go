package policy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/policy"
)

// TestImpactRank pins the one impact ordering the policy, the coordinator and the
// replay share: low < medium < high, and anything else (the empty impact of a proposal
// not yet classified, an unknown word, another case) ranks 0, below low. ImpactRank
// does not fail closed by itself: 0 means "not an impact", and each caller decides
// (the policy refuses such a declared impact; a classification error is made high by
// the caller, never by the ranking). MaxImpact keeps its first argument on a tie, so
// an unknown second impact never replaces a known one.
func TestImpactRank(t *testing.T) {
	for _, c := range []struct {
		in   string
		rank int
	}{
		{policy.ImpactLow, 1}, {policy.ImpactMedium, 2}, {policy.ImpactHigh, 3},
		{"", 0}, {"critical", 0}, {"HIGH", 0}, {" high", 0},
	} {
		require.Equal(t, c.rank, policy.ImpactRank(c.in), "%q", c.in)
	}
	for _, c := range []struct{ a, b, want string }{
		{policy.ImpactLow, policy.ImpactHigh, policy.ImpactHigh},
		{policy.ImpactHigh, policy.ImpactLow, policy.ImpactHigh},
		{policy.ImpactMedium, policy.ImpactMedium, policy.ImpactMedium},
		{"", policy.ImpactLow, policy.ImpactLow},
		{policy.ImpactLow, "", policy.ImpactLow},
		{policy.ImpactLow, "critical", policy.ImpactLow},
		{"", "critical", ""},
	} {
		require.Equal(t, c.want, policy.MaxImpact(c.a, c.b), "MaxImpact(%q, %q)", c.a, c.b)
	}
}
