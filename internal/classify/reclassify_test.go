package classify_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/classify"
	"github.com/decision-fabric/fabric/internal/policy"
)

// TestReclassify pins the rule the coordinator (at agreement and at enactment) and the
// replay apply when the change to be made is classified again: nothing more asked, the
// classification before stands as it was; anything more (a higher impact, approval
// newly required, more approvers) raises it to the higher impact, approval required,
// the approvers of either and at least one.
func TestReclassify(t *testing.T) {
	type g = classify.Gate
	low, medium, high := policy.ImpactLow, policy.ImpactMedium, policy.ImpactHigh
	for _, c := range []struct {
		name        string
		before, now g
		want        g
		raised      bool
	}{
		{"same", g{low, false, 0}, g{low, false, 0}, g{low, false, 0}, false},
		{"lower impact", g{high, true, 2}, g{low, false, 0}, g{high, true, 2}, false},
		{"lower, fewer approvers", g{medium, true, 3}, g{medium, true, 2}, g{medium, true, 3}, false},
		{"higher impact alone needs approval", g{low, false, 0}, g{medium, false, 0}, g{medium, true, 1}, true},
		{"approval newly required", g{medium, false, 0}, g{medium, true, 2}, g{medium, true, 2}, true},
		{"more approvers", g{high, true, 1}, g{high, true, 2}, g{high, true, 2}, true},
		{"higher impact keeps the approvers before", g{medium, true, 3}, g{high, true, 1}, g{high, true, 3}, true},
		{"higher, approvers of neither", g{low, false, 0}, g{high, true, 0}, g{high, true, 1}, true},
		// Not yet classified (ranked below low): any classification is higher.
		{"unclassified before", g{"", false, 0}, g{low, false, 0}, g{low, true, 1}, true},
		// An unknown impact now ranks below low: it raises nothing by itself (callers
		// make a classification that failed high before they ask).
		{"unknown now", g{low, false, 0}, g{"critical", false, 0}, g{low, false, 0}, false},
		// Kept as it was when nothing more is asked, even a required approval with no
		// count (the caller's minimum applies).
		{"kept as it was", g{medium, true, 0}, g{low, true, 0}, g{medium, true, 0}, false},
	} {
		got, raised := classify.Reclassify(c.before, c.now)
		require.Equal(t, c.want, got, c.name)
		require.Equal(t, c.raised, raised, c.name)
	}
}
