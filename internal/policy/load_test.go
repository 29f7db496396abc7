package policy

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		line int    // expected LoadError.Line; -1 = not a LoadError check
		want string // substring of the message
	}{
		{
			name: "invalid CEL reports the expression's line",
			src: `version: 1
defaults:
  impact_rules:
    - name: ok
      when: size(regions) > 1
      impact: medium
    - name: broken
      when: size(regions) >>> 2
      impact: high
`,
			line: 8, want: `defaults.impact_rules[1] ("broken").when: invalid CEL expression`,
		},
		{
			name: "undeclared variable in a tenant",
			src: `version: 1
tenants:
  t1:
    approval_when: impact == "high" && approver_count > 1
`,
			line: 4, want: "undeclared reference to 'approver_count'",
		},
		{
			name: "block scalar error line is inside the block",
			src: `version: 1
defaults:
  approval_when: |
    impact == "high" ||
    cost_delta_monthly > "1000"
`,
			line: 5, want: "found no matching overload",
		},
		{
			name: "impact is not available in impact rules",
			src: `version: 1
defaults:
  impact_rules:
    - name: self
      when: impact == "high"
      impact: high
`,
			line: 5, want: "undeclared reference to 'impact'",
		},
		{
			name: "non-bool approval_when",
			src:  "version: 1\ndefaults:\n  approval_when: regions_count\n",
			line: 3, want: "expression must be bool, but has type int",
		},
		{
			name: "non-bool rule",
			src:  "version: 1\ndefaults:\n  impact_rules:\n    - name: x\n      when: parameters.flag\n      impact: high\n",
			line: 5, want: "expression must be bool, but has type dyn",
		},
		{
			name: "unknown top-level key",
			src:  "version: 1\npolicies: {}\n",
			line: 2, want: "policies: unknown key",
		},
		{
			name: "unknown section key",
			src:  "version: 1\ndefaults:\n  quorum: majority\n  quorom: majority\n",
			line: 4, want: "defaults.quorom: unknown key",
		},
		{
			name: "unknown rule key",
			src:  "version: 1\ndefaults:\n  impact_rules:\n    - name: x\n      when: \"true\"\n      impact: high\n      severity: 3\n",
			line: 7, want: "impact_rules[0].severity: unknown key",
		},
		{
			name: "unknown tenant key",
			src:  "version: 1\ntenants:\n  t1:\n    quorum: majority\n    cap: 3\n",
			line: 5, want: "tenants.t1.cap: unknown key",
		},
		{
			name: "unknown unknown_actions",
			src:  "version: 1\ndefaults:\n  unknown_actions: low\n",
			line: 3, want: `defaults.unknown_actions: unknown value "low" (want one of: refuse, high)`,
		},
		{
			name: "unknown quorum",
			src:  "version: 1\ndefaults:\n  quorum: plurality\n",
			line: 3, want: `unknown value "plurality" (want one of: majority, two_thirds, unanimous, weighted)`,
		},
		{
			name: "unknown quorum in a quorum rule",
			src:  "version: 1\ntenants:\n  t1:\n    quorum_rules:\n      - name: q\n        when: \"true\"\n        quorum: most\n",
			line: 7, want: `unknown value "most"`,
		},
		{
			name: "unknown impact",
			src:  "version: 1\ndefaults:\n  impact_rules:\n    - name: x\n      when: \"true\"\n      impact: critical\n",
			line: 6, want: `unknown value "critical"`,
		},
		{
			name: "missing when",
			src:  "version: 1\ndefaults:\n  impact_rules:\n    - name: x\n      impact: high\n",
			line: 4, want: "missing when",
		},
		{
			name: "missing name",
			src:  "version: 1\ndefaults:\n  impact_rules:\n    - when: \"true\"\n      impact: high\n",
			line: 4, want: "missing name",
		},
		{
			name: "duplicate rule name",
			src:  "version: 1\ndefaults:\n  impact_rules:\n    - {name: x, when: \"true\", impact: high}\n    - {name: x, when: \"false\", impact: low}\n",
			line: 5, want: `duplicate rule name "x"`,
		},
		{
			name: "unknown reason placeholder",
			src:  "version: 1\ndefaults:\n  impact_rules:\n    - name: x\n      when: \"true\"\n      impact: high\n      reason: \"{parameters} leaked\"\n",
			line: 7, want: "unknown placeholder {parameters}",
		},
		{
			name: "duplicate key",
			src:  "version: 1\ndefaults:\n  quorum: majority\n  quorum: unanimous\n",
			line: 4, want: "duplicate key",
		},
		{
			name: "missing version",
			src:  "defaults:\n  quorum: majority\n",
			line: 1, want: "version: missing",
		},
		{
			name: "wrong version",
			src:  "version: 2\n",
			line: 1, want: "unsupported version 2",
		},
		{
			name: "approvals out of range",
			src:  "version: 1\ndefaults:\n  approvals_required: 0\n",
			line: 3, want: "between 1 and 100",
		},
		{
			name: "approvals not an int",
			src:  "version: 1\ndefaults:\n  approvals_required: two\n",
			line: 3, want: "must be an integer",
		},
		{
			name: "negative cap",
			src:  "version: 1\ndefaults:\n  max_monthly_cost_delta: -1\n",
			line: 3, want: "must be >= 0",
		},
		{
			name: "bad currency",
			src:  "version: 1\ndefaults:\n  currency: usd\n",
			line: 3, want: "ISO 4217",
		},
		{
			name: "bad cross_tenant",
			src:  "version: 1\ndefaults:\n  cross_tenant: maybe\n",
			line: 3, want: `unknown value "maybe" (want one of: deny, allow)`,
		},
		{
			name: "targets without allow",
			src:  "version: 1\ntenants:\n  t1:\n    cross_tenant_targets: [t2]\n",
			line: 4, want: "cross_tenant_targets is set but cross_tenant is deny",
		},
		{
			name: "bad region weight",
			src:  "version: 1\ndefaults:\n  quorum: weighted\n  region_weights: {eu-west: 0}\n",
			line: 4, want: "weight must be > 0",
		},
		{
			name: "timeout too long",
			src:  "version: 1\ndefaults:\n  decision_timeout_ms: 600001\n",
			line: 3, want: "decision_timeout_ms: must be between 1 and 600000",
		},
		{
			name: "null value",
			src:  "version: 1\ndefaults:\n  quorum:\n",
			line: 3, want: "has no value",
		},
		{
			name: "aliases are rejected",
			src:  "version: 1\ndefaults: &d\n  quorum: majority\ntenants:\n  t1: *d\n",
			line: 2, want: "anchors and aliases are not supported",
		},
		{
			name: "tenant id with a space",
			src:  "version: 1\ntenants:\n  \"t 1\": {}\n",
			line: 3, want: "tenant id",
		},
		{
			name: "empty expression",
			src:  "version: 1\ndefaults:\n  approval_when: \"  \"\n",
			line: 3, want: "empty CEL expression",
		},
		{
			name: "two documents",
			src:  "version: 1\n---\nversion: 1\n",
			line: 2, want: "one YAML document",
		},
		{
			name: "empty file",
			src:  "",
			line: 0, want: "empty policy file",
		},
		{
			name: "not a mapping",
			src:  "- version: 1\n",
			line: 1, want: "must be a mapping",
		},
		{
			name: "YAML syntax error",
			src:  "version: 1\ndefaults:\n  quorum: [majority\n",
			line: -1, want: "invalid YAML",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := Parse([]byte(tc.src), "p.yaml")
			require.Error(t, err)
			require.Nil(t, e)
			require.ErrorContains(t, err, tc.want)
			var le *LoadError
			require.True(t, errors.As(err, &le), "%T: %v", err, err)
			require.Equal(t, "p.yaml", le.Source)
			if tc.line >= 0 {
				require.Equal(t, tc.line, le.Line, "error: %v", err)
				if tc.line > 0 {
					require.True(t, strings.HasPrefix(err.Error(), "p.yaml:"+strconv.Itoa(tc.line)+": "), err.Error())
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
	}{
		{"minimal", "version: 1\n"},
		{"empty sections", "version: 1\ndefaults:\ntenants:\n"},
		{"empty rule list clears the rules", "version: 1\ntenants:\n  t1:\n    impact_rules: []\n"},
		{"integer compared with double", "version: 1\ndefaults:\n  approval_when: cost_delta_monthly > 1000\n"},
		{"string extensions", "version: 1\ndefaults:\n  approval_when: target.lowerAscii().startsWith(\"db-\")\n"},
		{"math extension", "version: 1\ndefaults:\n  approval_when: math.abs(replica_delta) > 3\n"},
		{"sets extension", "version: 1\ndefaults:\n  approval_when: sets.intersects(regions, [\"eu-west\", \"eu-central\"])\n"},
		{"numeric tenant id", "version: 1\ntenants:\n  42:\n    quorum: unanimous\n"},
		{"multi-line plain scalar", "version: 1\ndefaults:\n  approval_when: impact == \"high\"\n    || cross_tenant\n"},
		{"folded block", "version: 1\ndefaults:\n  approval_when: >\n    impact == \"high\" ||\n    cross_tenant\n"},
		{"braces that are not placeholders", "version: 1\ndefaults:\n  impact_rules:\n    - {name: x, when: \"true\", impact: low, reason: \"{} {Target} {1a}\"}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.src), "p.yaml")
			require.NoError(t, err)
		})
	}
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	_, err := Parse(make([]byte, MaxFileSize+1), "big.yaml")
	require.ErrorContains(t, err, "larger than")

	long := "version: 1\ndefaults:\n  approval_when: " + strings.Repeat("true && ", MaxExpressionLength/8+1) + "true\n"
	_, err = Parse([]byte(long), "long.yaml")
	require.ErrorContains(t, err, "long.yaml:3:")
}
