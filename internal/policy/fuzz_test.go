package policy

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics, whatever the bytes, and that an
// engine it accepts evaluates without panicking and only with the
// documented errors.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		string(DefaultPolicyYAML),
		testPolicy,
		"",
		"version: 1\n",
		"version: 1\ndefaults:\ntenants:\n",
		"version: 1\ndefaults: &d\n  quorum: majority\ntenants:\n  t1: *d\n",
		"version: 1\ndefaults:\n  approval_when: |\n    impact == \"high\" ||\n    cost_delta_monthly > \"1\"\n",
		"version: 1\ndefaults:\n  impact_rules:\n    - {name: x, when: \"parameters.a.b == 1\", impact: high, reason: \"{target} {regions}\"}\n",
		"version: 1\ndefaults:\n  region_weights: {a: 1e308, b: .nan}\n",
		"version: 1\n---\n- a\n",
		"{version: 1, tenants: {t1: {quorum_rules: [{name: q, when: 'true', quorum: weighted}]}}}",
		"version: !!binary AQ==\n",
		"<<: {version: 1}\n",
		"version: 1\ndefaults:\n  approval_when: lists.range(1000).all(i, lists.range(1000).all(j, true))\n",
		approvalPolicy,
		"version: 1\ndefaults:\n  approval: {sets: [{rules: [{name: a, approve: 1, deny: 1, filter: {roles: [r], groups: [g]}}]}], expires_after: 1h}\n",
	} {
		f.Add([]byte(s))
	}
	inputs := []Input{
		{TenantID: "t1", Action: "scale", Regions: []string{"a", "b", "c"}, ReplicaDelta: 12, CostDeltaMonthly: 6000, BlastRadius: 1},
		{TenantID: "42", TargetTenant: "t1", DeclaredImpact: "medium", Parameters: map[string]any{"a": map[string]any{"b": 1}}},
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := Parse(raw, "fuzz.yaml")
		if err != nil {
			if e != nil {
				t.Fatalf("engine and error: %v", err)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("not a LoadError: %T %v", err, err)
			}
			return
		}
		// An accepted approval block is one the approval model accepts.
		for _, id := range append(e.Tenants(), "no-section") {
			if err := e.ApprovalRules(id).Validate(); err != nil {
				t.Fatalf("accepted approval rules of %s are invalid: %v", id, err)
			}
		}
		for _, in := range inputs {
			d, err := e.Evaluate(in)
			if err != nil && !errors.Is(err, ErrCostCapExceeded) && !errors.Is(err, ErrCrossTenantDenied) && !errors.Is(err, ErrEvaluation) {
				t.Fatalf("unexpected error %v", err)
			}
			if err == nil && (ImpactRank(d.Impact) == 0 || d.Quorum == "") {
				t.Fatalf("incomplete decision %+v", d)
			}
			if d.Impact == ImpactHigh && (!d.ApprovalRequired || !d.DryRunDefault) {
				t.Fatalf("P3 violated: %+v", d)
			}
		}
	})
}
