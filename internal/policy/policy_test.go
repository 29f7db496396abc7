package policy

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testPolicy exercises overrides, quorum rules, weights and the gates.
const testPolicy = `version: 1
defaults:
  quorum: majority
  approvals_required: 1
  max_monthly_cost_delta: 5000
  currency: USD
  impact_rules:
    - name: wide-blast-radius
      when: size(regions) >= 3
      impact: high
      reason: "touches {regions_count} regions"
    - name: big-scale-change
      when: action == "scale" && abs_replica_delta >= 10
      impact: high
    - name: costly
      when: cost_delta_monthly > 1000.0
      impact: medium
  approval_when: impact == "high"
  cross_tenant: deny
tenants:
  t1:
    quorum: two_thirds
    approvals_required: 2
    max_monthly_cost_delta: 0
    currency: EUR
    decision_timeout_ms: 5000
    impact_rules:
      - name: any-change-is-medium
        when: "true"
        impact: medium
  t2:
    quorum: weighted
    region_weights: {eu-west: 2, us-east: 1.5}
    approval_when: impact == "medium" || computed_impact == "high"
    dry_run_when: declared_impact == "medium"
    cross_tenant: allow
  t3:
    cross_tenant: allow
    cross_tenant_targets: [t4, t5]
    quorum_rules:
      - name: eu-unanimous
        when: '"eu-west" in regions'
        quorum: unanimous
        reason: "{regions} includes eu-west"
`

func mustParse(t testing.TB, src string) *Engine {
	t.Helper()
	e, err := Parse([]byte(src), "test.yaml")
	require.NoError(t, err)
	return e
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	e := Default()
	require.Equal(t, DefaultSource, e.Source())
	require.Empty(t, e.Tenants())
	require.True(t, strings.HasPrefix(e.Digest(), "sha256:"))

	tests := []struct {
		name                   string
		in                     Input
		impact, quorum         string
		approval, dryRun       bool
		approvals              int
		reasonContains         string
		wantCap, wantCrossDeny bool
	}{
		{
			name:   "small scale in one region is low",
			in:     Input{TenantID: "t9", Action: "scale", Target: "svc", Regions: []string{"eu-west"}, ReplicaDelta: 1, BlastRadius: 0.2},
			impact: ImpactLow, quorum: QuorumMajority,
			reasonContains: "impact low (declared and computed)",
		},
		{
			name:   "two regions is medium: dry run, no approval",
			in:     Input{TenantID: "t9", Action: "scale", Regions: []string{"eu-west", "us-east"}, ReplicaDelta: 1},
			impact: ImpactMedium, quorum: QuorumMajority, dryRun: true,
			reasonContains: `rule "multi-region": touches eu-west, us-east → medium`,
		},
		{
			name:   "three regions is high: two thirds, approval, dry run",
			in:     Input{TenantID: "t9", Action: "restart", Regions: []string{"a", "b", "c"}, BlastRadius: 0.3},
			impact: ImpactHigh, quorum: QuorumTwoThirds, approval: true, approvals: 1, dryRun: true,
			reasonContains: `rule "wide-blast-radius": touches 3 region(s), blast radius 0.3 → high`,
		},
		{
			name:   "blast radius alone is high",
			in:     Input{TenantID: "t9", Action: "restart", Regions: []string{"a"}, BlastRadius: 0.5},
			impact: ImpactHigh, quorum: QuorumTwoThirds, approval: true, approvals: 1, dryRun: true,
		},
		{
			name:   "destructive action is high",
			in:     Input{TenantID: "t9", Action: "migrate", Regions: []string{"a"}},
			impact: ImpactHigh, quorum: QuorumTwoThirds, approval: true, approvals: 1, dryRun: true,
			reasonContains: `rule "destructive-action": migrate is hard to reverse → high`,
		},
		{
			name:   "scale down by 10 is high",
			in:     Input{TenantID: "t9", Action: "scale", Regions: []string{"a"}, ReplicaDelta: -10},
			impact: ImpactHigh, quorum: QuorumTwoThirds, approval: true, approvals: 1, dryRun: true,
			reasonContains: `changes replicas by -10 → high`,
		},
		{
			name:   "over the 5000 cap is refused",
			in:     Input{TenantID: "t9", Action: "scale", Regions: []string{"a"}, CostDeltaMonthly: 5000.01},
			impact: ImpactHigh, quorum: QuorumTwoThirds, approval: true, approvals: 1, dryRun: true,
			wantCap: true, reasonContains: "exceeds the cap 5000.00 USD",
		},
		{
			name:   "cross tenant is denied by default",
			in:     Input{TenantID: "t9", TargetTenant: "t8", Action: "scale", Regions: []string{"a"}},
			impact: ImpactHigh, quorum: QuorumTwoThirds, approval: true, approvals: 1, dryRun: true,
			wantCrossDeny: true, reasonContains: `rule "cross-tenant": targets tenant t8 → high`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.Evaluate(tc.in)
			require.Equal(t, tc.wantCap, errors.Is(err, ErrCostCapExceeded), "err=%v", err)
			require.Equal(t, tc.wantCrossDeny, errors.Is(err, ErrCrossTenantDenied), "err=%v", err)
			if !tc.wantCap && !tc.wantCrossDeny {
				require.NoError(t, err)
			}
			require.Equal(t, tc.impact, d.Impact)
			require.Equal(t, tc.quorum, d.Quorum)
			require.Equal(t, tc.approval, d.ApprovalRequired)
			require.Equal(t, tc.approvals, d.ApprovalsRequired)
			require.Equal(t, tc.dryRun, d.DryRunDefault)
			require.Equal(t, 5000.0, d.MaxMonthlyCostDelta)
			require.Equal(t, "USD", d.Currency)
			require.Equal(t, "defaults", d.Policy)
			require.Equal(t, e.Digest(), d.PolicyDigest)
			require.Equal(t, e.DefaultDecisionTimeout(), d.DecisionTimeout)
			if tc.reasonContains != "" {
				require.Contains(t, strings.Join(d.Reasons, "\n"), tc.reasonContains)
			}
		})
	}
}

func TestTenantOverride(t *testing.T) {
	t.Parallel()
	e := mustParse(t, testPolicy)
	require.Equal(t, []string{"t1", "t2", "t3"}, e.Tenants())

	tests := []struct {
		name      string
		in        Input
		impact    string
		quorum    string
		approvals int
		cap       float64
		currency  string
		timeout   time.Duration
		policy    string
		weights   map[string]float64
	}{
		{
			name:   "t1 overrides quorum, approvals, cap, currency, timeout and rules",
			in:     Input{TenantID: "t1", Action: "scale", Regions: []string{"a", "b", "c"}, ReplicaDelta: 50, CostDeltaMonthly: 1e9},
			impact: ImpactMedium, // its only rule says medium; the defaults' rules are replaced
			quorum: QuorumTwoThirds, approvals: 0, cap: 0, currency: "EUR", timeout: 5 * time.Second, policy: "tenant:t1",
		},
		{
			name:   "t1 declared high still needs its 2 approvals",
			in:     Input{TenantID: "t1", Action: "scale", DeclaredImpact: "high"},
			impact: ImpactHigh, quorum: QuorumTwoThirds, approvals: 2, cap: 0, currency: "EUR", timeout: 5 * time.Second, policy: "tenant:t1",
		},
		{
			name:   "t2 inherits the rules, sets weighted quorum with weights",
			in:     Input{TenantID: "t2", Action: "scale", Regions: []string{"a", "b", "c"}},
			impact: ImpactHigh, quorum: QuorumWeighted, approvals: 1, cap: 5000, currency: "USD", timeout: 30 * time.Second, policy: "tenant:t2",
			weights: map[string]float64{"eu-west": 2, "us-east": 1.5},
		},
		{
			name:   "unknown tenant uses the defaults",
			in:     Input{TenantID: "zz", Action: "scale", Regions: []string{"a"}},
			impact: ImpactLow, quorum: QuorumMajority, approvals: 0, cap: 5000, currency: "USD", timeout: 30 * time.Second, policy: "defaults",
		},
		{
			name:   "t3 quorum rule matches eu-west",
			in:     Input{TenantID: "t3", Action: "scale", Regions: []string{"eu-west"}},
			impact: ImpactLow, quorum: QuorumUnanimous, approvals: 0, cap: 5000, currency: "USD", timeout: 30 * time.Second, policy: "tenant:t3",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := e.WithDefaultDecisionTimeout(30 * time.Second)
			d, err := e.Evaluate(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.impact, d.Impact)
			require.Equal(t, tc.quorum, d.Quorum)
			require.Equal(t, tc.approvals, d.ApprovalsRequired)
			require.Equal(t, tc.approvals > 0, d.ApprovalRequired)
			require.Equal(t, tc.cap, d.MaxMonthlyCostDelta)
			require.Equal(t, tc.currency, d.Currency)
			require.Equal(t, tc.timeout, d.DecisionTimeout)
			require.Equal(t, tc.policy, d.Policy)
			require.Equal(t, tc.weights, d.RegionWeights)
		})
	}

	t.Run("weights are a copy", func(t *testing.T) {
		t.Parallel()
		d, err := e.Evaluate(Input{TenantID: "t2"})
		require.NoError(t, err)
		d.RegionWeights["eu-west"] = 99
		d2, err := e.Evaluate(Input{TenantID: "t2"})
		require.NoError(t, err)
		require.Equal(t, 2.0, d2.RegionWeights["eu-west"])
	})
	t.Run("quorum rule reason", func(t *testing.T) {
		t.Parallel()
		d, err := e.Evaluate(Input{TenantID: "t3", Regions: []string{"us-east", "eu-west"}})
		require.NoError(t, err)
		require.Contains(t, d.Reasons, `quorum rule "eu-unanimous": eu-west, us-east includes eu-west → unanimous`)
	})
}

func TestEffectiveImpactIsTheHigher(t *testing.T) {
	t.Parallel()
	e := mustParse(t, testPolicy)
	tests := []struct {
		name             string
		in               Input
		impact, computed string
		reason           string
	}{
		{
			name:   "declared high beats computed low",
			in:     Input{TenantID: "zz", Action: "scale", DeclaredImpact: "high", Regions: []string{"a"}},
			impact: ImpactHigh, computed: ImpactLow,
			reason: "impact high: declared high is higher than computed low",
		},
		{
			name:   "computed high beats declared low",
			in:     Input{TenantID: "zz", Action: "scale", DeclaredImpact: "low", Regions: []string{"a", "b", "c"}},
			impact: ImpactHigh, computed: ImpactHigh,
			reason: "impact high: computed high is higher than declared low",
		},
		{
			name:   "computed high beats declared medium",
			in:     Input{TenantID: "zz", Action: "scale", DeclaredImpact: "Medium ", ReplicaDelta: 10},
			impact: ImpactHigh, computed: ImpactHigh,
			reason: "impact high: computed high is higher than declared medium",
		},
		{
			name:   "declared medium beats computed low",
			in:     Input{TenantID: "zz", Action: "scale", DeclaredImpact: "medium"},
			impact: ImpactMedium, computed: ImpactLow,
		},
		{
			name:   "no declaration counts as low",
			in:     Input{TenantID: "zz", CostDeltaMonthly: 1500},
			impact: ImpactMedium, computed: ImpactMedium,
			reason: `rule "costly": cost_delta_monthly > 1000.0 → medium`,
		},
		{
			name:   "highest matching rule wins, every match is explained",
			in:     Input{TenantID: "zz", Action: "scale", Regions: []string{"a", "b", "c"}, CostDeltaMonthly: 1500},
			impact: ImpactHigh, computed: ImpactHigh,
			reason: `rule "wide-blast-radius": touches 3 regions → high`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.Evaluate(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.impact, d.Impact)
			require.Equal(t, tc.computed, d.ComputedImpact)
			if tc.impact == ImpactHigh {
				require.True(t, d.ApprovalRequired, "P3: high impact needs an approver")
				require.True(t, d.DryRunDefault, "P3: high impact defaults to dry run")
			}
			if tc.reason != "" {
				require.Contains(t, d.Reasons, tc.reason)
			}
		})
	}
}

func TestApprovalWhenSeesEffectiveImpact(t *testing.T) {
	t.Parallel()
	e := mustParse(t, testPolicy) // t2: approval_when: impact == "medium" || computed_impact == "high"
	tests := []struct {
		name             string
		in               Input
		approval, dryRun bool
	}{
		{"declared medium, computed low: approval_when sees medium", Input{TenantID: "t2", DeclaredImpact: "medium"}, true, true},
		{"computed medium", Input{TenantID: "t2", CostDeltaMonthly: 2000}, true, false},
		{"low", Input{TenantID: "t2"}, false, false},
		{"high always requires approval (P3)", Input{TenantID: "t2", DeclaredImpact: "high"}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.Evaluate(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.approval, d.ApprovalRequired)
			require.Equal(t, tc.dryRun, d.DryRunDefault)
			if tc.approval {
				require.Equal(t, 1, d.ApprovalsRequired)
			} else {
				require.Zero(t, d.ApprovalsRequired)
			}
		})
	}

	t.Run("approval_when false cannot waive P3", func(t *testing.T) {
		t.Parallel()
		e := mustParse(t, "version: 1\ndefaults:\n  approval_when: \"false\"\n  dry_run_when: \"false\"\n")
		d, err := e.Evaluate(Input{TenantID: "t", DeclaredImpact: "high"})
		require.NoError(t, err)
		require.True(t, d.ApprovalRequired)
		require.True(t, d.DryRunDefault)
	})
}

func TestCrossTenant(t *testing.T) {
	t.Parallel()
	e := mustParse(t, testPolicy)
	tests := []struct {
		name      string
		in        Input
		denied    bool
		crossFlag bool
	}{
		{"same tenant explicitly", Input{TenantID: "t9", TargetTenant: "t9"}, false, false},
		{"no target tenant", Input{TenantID: "t9"}, false, false},
		{"defaults deny", Input{TenantID: "t9", TargetTenant: "t1"}, true, true},
		{"t2 allows any target", Input{TenantID: "t2", TargetTenant: "t1"}, false, true},
		{"t3 allows listed target", Input{TenantID: "t3", TargetTenant: "t5"}, false, true},
		{"t3 denies unlisted target", Input{TenantID: "t3", TargetTenant: "t1"}, true, true},
		{"the target's policy does not matter", Input{TenantID: "t1", TargetTenant: "t2"}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.Evaluate(tc.in)
			require.Equal(t, tc.denied, errors.Is(err, ErrCrossTenantDenied), "err=%v", err)
			if !tc.denied {
				require.NoError(t, err)
			}
			require.Equal(t, tc.crossFlag, d.CrossTenant)
			require.NotEmpty(t, d.Impact, "the Decision is returned even when refused")
			require.NotEmpty(t, d.Quorum)
		})
	}
}

func TestCostCap(t *testing.T) {
	t.Parallel()
	e := mustParse(t, testPolicy)
	tests := []struct {
		name     string
		in       Input
		exceeded bool
	}{
		{"under", Input{TenantID: "t9", CostDeltaMonthly: 4999.99}, false},
		{"exactly at the cap", Input{TenantID: "t9", CostDeltaMonthly: 5000}, false},
		{"over", Input{TenantID: "t9", CostDeltaMonthly: 5000.01}, true},
		{"savings are never capped", Input{TenantID: "t9", CostDeltaMonthly: -1e7}, false},
		{"cap 0 means no cap", Input{TenantID: "t1", CostDeltaMonthly: 1e12}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.Evaluate(tc.in)
			require.Equal(t, tc.exceeded, errors.Is(err, ErrCostCapExceeded), "err=%v", err)
			if !tc.exceeded {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "5000.01 USD/month is over the 5000.00 USD cap")
			require.Equal(t, ImpactMedium, d.Impact, "the Decision is returned even when refused")
			require.Contains(t, d.Reasons, "refused: cost delta 5000.01 USD/month exceeds the cap 5000.00 USD")
		})
	}

	t.Run("both gates at once", func(t *testing.T) {
		t.Parallel()
		_, err := e.Evaluate(Input{TenantID: "t9", TargetTenant: "t1", CostDeltaMonthly: 9000})
		require.ErrorIs(t, err, ErrCostCapExceeded)
		require.ErrorIs(t, err, ErrCrossTenantDenied)
	})
}

// TestUnknownActions: an action outside the fabric's catalogue is refused by default,
// and high impact (approval, dry run) where the policy says `unknown_actions: high`;
// never low, whatever the rules say.
func TestUnknownActions(t *testing.T) {
	t.Parallel()
	e := mustParse(t, `version: 1
defaults:
  impact_rules:
    - name: never
      when: "false"
      impact: high
tenants:
  lab:
    unknown_actions: high
  strict:
    unknown_actions: refuse
`)
	for _, tenant := range []string{"t1", "strict"} {
		d, err := e.Evaluate(Input{TenantID: tenant, Action: "drop-database", UnknownAction: true})
		require.ErrorIs(t, err, ErrUnknownActionRefused, tenant)
		require.ErrorContains(t, err, `action "drop-database" is not one the fabric knows`)
		require.Empty(t, d.Impact, "no Decision: the engine fails closed")
	}
	d, err := e.Evaluate(Input{TenantID: "lab", Action: "wipe", UnknownAction: true})
	require.NoError(t, err)
	require.Equal(t, ImpactHigh, d.Impact)
	require.Equal(t, ImpactHigh, d.ComputedImpact)
	require.True(t, d.ApprovalRequired)
	require.True(t, d.DryRunDefault)
	require.Contains(t, d.Reasons, `action "wipe" is not one the fabric knows (unknown_actions: high) → high`)

	d, err = e.Evaluate(Input{TenantID: "lab", Action: "scale"})
	require.NoError(t, err)
	require.Equal(t, ImpactLow, d.Impact, "a known action is classified by the rules")

	_, err = Default().Evaluate(Input{TenantID: "t1", Action: "shutdown", UnknownAction: true})
	require.ErrorIs(t, err, ErrUnknownActionRefused, "the built-in policy refuses unknown actions")
}

// TestImpactUnknownIsHigh: a change whose size could not be computed is high impact,
// never the low its zero replica and cost deltas would suggest.
func TestImpactUnknownIsHigh(t *testing.T) {
	t.Parallel()
	d, err := Default().Evaluate(Input{TenantID: "t1", Action: "scale", Regions: []string{"eu-west"}, ImpactUnknown: "plan failed: replicas 5000 out of range"})
	require.NoError(t, err)
	require.Equal(t, ImpactHigh, d.Impact)
	require.True(t, d.ApprovalRequired)
	require.True(t, d.DryRunDefault)
	require.Contains(t, d.Reasons, "impact unknown: plan failed: replicas 5000 out of range → high")
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	e := mustParse(t, "version: 1\ndefaults:\n  approval_when: size(parameters) > 100\n")
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"no tenant", Input{Action: "scale"}, "tenant_id is required"},
		{"blank tenant", Input{TenantID: "  "}, "tenant_id is required"},
		{"unknown declared impact", Input{TenantID: "t", DeclaredImpact: "critical"}, `declared impact "critical"`},
		{"NaN cost", Input{TenantID: "t", CostDeltaMonthly: math.NaN()}, "not a finite number"},
		{"infinite cost", Input{TenantID: "t", CostDeltaMonthly: math.Inf(1)}, "not a finite number"},
		{"blast radius > 1", Input{TenantID: "t", BlastRadius: 1.5}, "outside 0..1"},
		{"negative blast radius", Input{TenantID: "t", BlastRadius: -0.1}, "outside 0..1"},
		{"unsupported parameter", Input{TenantID: "t", Parameters: map[string]any{"f": func() {}}}, "parameters.f: unsupported type"},
		{"non-string map keys", Input{TenantID: "t", Parameters: map[string]any{"m": map[int]int{1: 1}}}, "map keys must be strings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.Evaluate(tc.in)
			require.ErrorIs(t, err, ErrInvalidInput)
			require.ErrorContains(t, err, tc.want)
			require.Zero(t, d.Impact)
		})
	}

	t.Run("deeply nested parameters", func(t *testing.T) {
		t.Parallel()
		var v any = "leaf"
		for range 40 {
			v = map[string]any{"x": v}
		}
		_, err := e.Evaluate(Input{TenantID: "t", Parameters: map[string]any{"deep": v}})
		require.ErrorIs(t, err, ErrInvalidInput)
		require.NotErrorIs(t, err, ErrEvaluation)
		require.ErrorContains(t, err, "too large or too deeply nested")
	})

	t.Run("parameters no rule reads are not converted", func(t *testing.T) {
		t.Parallel()
		_, err := Default().Evaluate(Input{TenantID: "t", Parameters: map[string]any{"f": func() {}}})
		require.NoError(t, err)
	})
}

func TestParameters(t *testing.T) {
	t.Parallel()
	e := mustParse(t, `version: 1
defaults:
  impact_rules:
    - name: flagged
      when: has(parameters.risk) && parameters.risk == "high"
      impact: high
    - name: nested
      when: parameters.?spec.?replicas.orValue(0) > 20
      impact: high
    - name: list
      when: '"gpu" in parameters.?features.orValue([])'
      impact: medium
    - name: missing-key-errors
      when: '"strict" in parameters && parameters.strict.missing == 1'
      impact: high
`)
	tests := []struct {
		name    string
		params  map[string]any
		impact  string
		evalErr bool
	}{
		{"empty", nil, ImpactLow, false},
		{"flag", map[string]any{"risk": "high"}, ImpactHigh, false},
		{"nested int", map[string]any{"spec": map[string]any{"replicas": 21}}, ImpactHigh, false},
		{"nested float from JSON", map[string]any{"spec": map[string]any{"replicas": 21.0}}, ImpactHigh, false},
		{"typed slice", map[string]any{"features": []string{"gpu"}}, ImpactMedium, false},
		{"missing key fails closed", map[string]any{"strict": map[string]any{}}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := e.Evaluate(Input{TenantID: "t", Parameters: tc.params})
			if tc.evalErr {
				require.ErrorIs(t, err, ErrEvaluation)
				require.ErrorContains(t, err, `"missing-key-errors"`)
				require.Zero(t, d.Impact)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.impact, d.Impact)
		})
	}
}

func TestCostLimitBoundsEvaluation(t *testing.T) {
	t.Parallel()
	e := mustParse(t, `version: 1
defaults:
  impact_rules:
    - name: quadratic
      when: lists.range(1000).all(i, lists.range(1000).all(j, i + j >= 0))
      impact: high
`)
	// A million comparisons would be evaluated without the limit; the cost
	// limit stops it after ~100k operations.
	_, err := e.Evaluate(Input{TenantID: "t"})
	require.ErrorIs(t, err, ErrEvaluation)
	require.ErrorContains(t, err, "cost limit")

	// Each rule below stays under the per-expression limit, but together
	// they exceed the per-Evaluate budget.
	var b strings.Builder
	b.WriteString("version: 1\ndefaults:\n  impact_rules:\n")
	for i := range 5 {
		fmt.Fprintf(&b, "    - name: r%d\n      when: lists.range(100).all(i, lists.range(100).all(j, i + j >= 0))\n      impact: low\n", i)
	}
	e = mustParse(t, b.String())
	e.costBudget = 200_000 // instead of EvaluateCostLimit, to keep the test fast
	_, err = e.Evaluate(Input{TenantID: "t"})
	require.ErrorIs(t, err, ErrEvaluation)
	require.ErrorContains(t, err, "exceeds the budget")
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	e := mustParse(t, testPolicy+`  t6:
    impact_rules:
      - name: first-key
        when: parameters.map(k, k)[0] == "a"
        impact: high
        reason: "first parameter key is a"
`)
	params := map[string]any{}
	for _, k := range strings.Fields("q w e r t y u i o p a s d f g h j k l z x c v b n m") {
		params[k] = map[string]any{"n": len(k), "l": []any{k, 1.5, true, nil}}
	}
	tests := []struct {
		name string
		in   Input
	}{
		{"defaults", Input{TenantID: "t9", Action: "scale", Regions: []string{"b", "a", "c"}, ReplicaDelta: 11, CostDeltaMonthly: 6000, TargetTenant: "t2"}},
		{"override", Input{TenantID: "t1", Action: "migrate", Regions: []string{"x"}, Parameters: params}},
		{"map iteration order", Input{TenantID: "t6", Parameters: params}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			first, firstErr := e.Evaluate(tc.in)
			for range 50 {
				d, err := e.Evaluate(tc.in)
				require.Equal(t, first, d)
				require.Equal(t, firstErr == nil, err == nil)
				if err != nil {
					require.Equal(t, firstErr.Error(), err.Error())
				}
			}
		})
	}

	t.Run("region order and repetition do not matter", func(t *testing.T) {
		t.Parallel()
		a, errA := e.Evaluate(Input{TenantID: "t9", Regions: []string{"c", "a", "b", "a"}})
		b, errB := e.Evaluate(Input{TenantID: "t9", Regions: []string{"a", "b", "c", ""}})
		require.NoError(t, errA)
		require.NoError(t, errB)
		require.Equal(t, a, b)
	})

	t.Run("sorted map iteration", func(t *testing.T) {
		t.Parallel()
		d, err := e.Evaluate(Input{TenantID: "t6", Parameters: params})
		require.NoError(t, err)
		require.Equal(t, ImpactHigh, d.Impact)
	})

	t.Run("concurrent use", func(t *testing.T) {
		t.Parallel()
		in := Input{TenantID: "t2", Action: "scale", Regions: []string{"a", "b"}, Parameters: params, CostDeltaMonthly: 1200}
		want, err := e.Evaluate(in)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 20 {
					d, err := e.Evaluate(in)
					if err != nil || d.Impact != want.Impact || len(d.Reasons) != len(want.Reasons) {
						t.Errorf("concurrent Evaluate differs: %v %v", d, err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

func TestDecisionTimeout(t *testing.T) {
	t.Parallel()
	e := mustParse(t, testPolicy)
	tests := []struct {
		name     string
		engine   *Engine
		tenant   string
		expected time.Duration
	}{
		{"tenant sets its own", e, "t1", 5 * time.Second},
		{"explicit fallback", e.WithDefaultDecisionTimeout(1500 * time.Millisecond), "t2", 1500 * time.Millisecond},
		{"tenant wins over fallback", e.WithDefaultDecisionTimeout(1500 * time.Millisecond), "t1", 5 * time.Second},
		{"out-of-range fallback ignored", e.WithDefaultDecisionTimeout(-1), "t2", e.DefaultDecisionTimeout()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := tc.engine.Evaluate(Input{TenantID: tc.tenant})
			require.NoError(t, err)
			require.Equal(t, tc.expected, d.DecisionTimeout)
		})
	}
}

// Not parallel: it sets the environment.
// The process's default deadline comes from configuration (WithDefaultDecisionTimeout),
// never from the environment behind its back.
func TestDefaultDecisionTimeout(t *testing.T) {
	t.Setenv(DecisionTimeoutEnv, "1234")
	e := mustParse(t, "version: 1\n")
	require.Equal(t, DefaultDecisionTimeout, e.DefaultDecisionTimeout(), "the environment is config's to read")
	require.Equal(t, 1234*time.Millisecond, e.WithDefaultDecisionTimeout(1234*time.Millisecond).DefaultDecisionTimeout())
	require.Equal(t, DefaultDecisionTimeout, e.WithDefaultDecisionTimeout(MaxDecisionTimeout+1).DefaultDecisionTimeout(), "out of range is ignored")
}

func TestDefaultPolicyFilesMatch(t *testing.T) {
	t.Parallel()
	root, err := os.ReadFile(filepath.Join("..", "..", "policies", "default.yaml"))
	require.NoError(t, err)
	require.Equal(t, string(DefaultPolicyYAML), string(root),
		"policies/default.yaml must be identical to internal/policy/default.yaml (cp internal/policy/default.yaml policies/default.yaml)")
	require.NoError(t, Check(filepath.Join("..", "..", "policies", "default.yaml")))
}

func TestLoadAndCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte(testPolicy), 0o600))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("version: 1\ndefaults:\n  quorum: most\n"), 0o600))

	e, err := Load(good)
	require.NoError(t, err)
	require.Equal(t, good, e.Source())
	require.NoError(t, Check(good))

	err = Check(bad)
	require.ErrorContains(t, err, bad+":3: defaults.quorum: unknown value \"most\"")
	require.Error(t, Check(filepath.Join(dir, "missing.yaml")))
}
