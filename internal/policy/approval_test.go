package policy

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/approval"
)

const approvalPolicy = `version: 1
defaults:
  approvals_required: 1
tenants:
  t1:
    approvals_required: 3
    approval:
      sets:
        - rules:
            - {name: peer, approve: 1, deny: 1, filter: {roles: [approver], groups: [sre]}}
        - rules:
            - {name: manager, approve: 1, filter: {groups: [manager]}}
            - {name: two-leads, approve: 2, filter: {groups: [lead, staff]}}
      expires_after: 30m
      reminder_before: 5m
  t2:
    approvals_required: 2
  t3:
    approval:
      expires_after: 1h
`

func TestApprovalBlock(t *testing.T) {
	t.Parallel()
	e, err := Parse([]byte(approvalPolicy), "a.yaml")
	require.NoError(t, err)

	r1 := e.ApprovalRules("t1")
	require.Equal(t, approval.Rules{
		Sets: []approval.Set{
			{Rules: []approval.Rule{{Name: "peer", Approve: 1, Deny: 1, Filter: approval.Filter{Roles: []string{"approver"}, Groups: []string{"sre"}}}}},
			{Rules: []approval.Rule{
				{Name: "manager", Approve: 1, Filter: approval.Filter{Groups: []string{"manager"}}},
				{Name: "two-leads", Approve: 2, Filter: approval.Filter{Groups: []string{"lead", "staff"}}},
			}},
		},
		DefaultApprove: 3,
		ExpiresAfter:   30 * time.Minute,
		ReminderBefore: 5 * time.Minute,
	}, r1)
	// The caller's copy is its own.
	r1.Sets[0].Rules[0].Filter.Groups[0] = "x"
	require.Equal(t, "sre", e.ApprovalRules("t1").Sets[0].Rules[0].Filter.Groups[0])

	// No block: the default rule, M = approvals_required (2 for critical at least).
	require.Equal(t, approval.Rules{DefaultApprove: 2}, e.ApprovalRules("t2"))
	require.Equal(t, approval.Rules{DefaultApprove: 1}, e.ApprovalRules("unknown-tenant"))
	d := e.ApprovalRules("unknown-tenant").Effective(approval.ImpactCritical)
	require.Equal(t, 2, d[0].Rules[0].Approve)
	// A block without sets keeps the default rule.
	require.Equal(t, approval.Rules{DefaultApprove: 1, ExpiresAfter: time.Hour}, e.ApprovalRules("t3"))

	// The parsed rules drive the model end to end: two sres leave it pending,
	// an sre and a manager approve.
	req := approval.Request{ProposalID: "p", Tenant: "t1", Proposer: "alice", Impact: "high",
		Created: time.Unix(0, 0), Expires: time.Unix(0, 0).Add(r1.ExpiresAfter)}
	v := func(who string, groups ...string) approval.Vote {
		return approval.Vote{Approver: who, Roles: []string{"approver"}, Groups: groups, Decision: approval.Approve, At: time.Unix(60, 0)}
	}
	out, _, err := approval.Tally(req, e.ApprovalRules("t1"), []approval.Vote{v("bob", "sre"), v("dan", "sre")})
	require.NoError(t, err)
	require.Equal(t, approval.Pending, out.Status)
	out, _, err = approval.Tally(req, e.ApprovalRules("t1"), []approval.Vote{v("bob", "sre"), v("carol", "manager")})
	require.NoError(t, err)
	require.Equal(t, approval.Approved, out.Status)

	// The block does not change what the rest of the policy decides.
	dec, err := e.Evaluate(Input{TenantID: "t1", Action: "scale", Target: "s", DeclaredImpact: "high"})
	require.NoError(t, err)
	require.True(t, dec.ApprovalRequired)
	require.Equal(t, 3, dec.ApprovalsRequired)
}

func TestDefaultPolicyApprovalRules(t *testing.T) {
	t.Parallel()
	require.Equal(t, approval.Rules{DefaultApprove: 1}, Default().ApprovalRules("t1"))
}

func TestApprovalBlockErrors(t *testing.T) {
	t.Parallel()
	block := func(s string) string { return "version: 1\ndefaults:\n  approval:\n" + s }
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", block("    set: []\n"), "defaults.approval.set: unknown key (want sets, expires_after, reminder_before)"},
		{"null", "version: 1\ndefaults:\n  approval:\n", "defaults.approval: has no value"},
		{"no sets", block("    sets: []\n"), "defaults.approval.sets: must list at least one set"},
		{"set unknown key", block("    sets: [{rules: [{name: a, approve: 1, filter: {roles: [x]}}], any: 1}]\n"), "defaults.approval.sets[0].any: unknown key (want rules)"},
		{"set without rules", block("    sets: [{}]\n"), "defaults.approval.sets[0].rules: missing"},
		{"empty rules", block("    sets: [{rules: []}]\n"), "defaults.approval.sets[0].rules: must list 1-5 rules"},
		{"rule unknown key", block("    sets: [{rules: [{name: a, approve: 1, filter: {roles: [x]}, quorum: 2}]}]\n"), "defaults.approval.sets[0].rules[0].quorum: unknown key (want name, approve, deny, filter)"},
		{"approve 0", block("    sets: [{rules: [{name: a, approve: 0, filter: {roles: [x]}}]}]\n"), "defaults.approval.sets[0].rules[0].approve: must be between 1 and 10, not 0"},
		{"deny 0", block("    sets: [{rules: [{name: a, approve: 1, deny: 0, filter: {roles: [x]}}]}]\n"), "defaults.approval.sets[0].rules[0].deny: must be between 1 and 10, not 0"},
		{"approve not an integer", block("    sets: [{rules: [{name: a, approve: two, filter: {roles: [x]}}]}]\n"), "defaults.approval.sets[0].rules[0].approve: must be an integer"},
		{"approve missing", block("    sets: [{rules: [{name: a, filter: {roles: [x]}}]}]\n"), "defaults.approval.sets[0].rules[0].approve: missing"},
		{"name missing", block("    sets: [{rules: [{approve: 1, filter: {roles: [x]}}]}]\n"), "defaults.approval.sets[0].rules[0].name: missing"},
		{"filter missing", block("    sets: [{rules: [{name: a, approve: 1}]}]\n"), "defaults.approval.sets[0].rules[0].filter: missing"},
		{"empty filter", block("    sets: [{rules: [{name: a, approve: 1, filter: {}}]}]\n"), "defaults.approval.sets[0].rules[0].filter: must name at least one role or group"},
		{"empty group list", block("    sets: [{rules: [{name: a, approve: 1, filter: {groups: []}}]}]\n"), "defaults.approval.sets[0].rules[0].filter.groups: must not be empty"},
		{"filter unknown key", block("    sets: [{rules: [{name: a, approve: 1, filter: {teams: [x]}}]}]\n"), "defaults.approval.sets[0].rules[0].filter.teams: unknown key (want roles, groups)"},
		{"duplicate rule name", block("    sets: [{rules: [{name: a, approve: 1, filter: {roles: [x]}}]}, {rules: [{name: a, approve: 1, filter: {roles: [y]}}]}]\n"), `defaults.approval.sets[1].rules[0].name: duplicate rule name "a"`},
		{"too many sets", block("    sets: [" + repeatSets(6) + "]\n"), "defaults.approval.sets: more than 5 sets"},
		{"bad duration", block("    expires_after: 30\n"), `defaults.approval.expires_after: must be a duration such as 30m or 2h, not "30"`},
		{"negative duration", block("    reminder_before: -5m\n"), "defaults.approval.reminder_before: must be a duration between 1s and 168h0m0s"},
		{"too long", block("    expires_after: 200h\n"), "defaults.approval.expires_after: must be a duration between 1s and 168h0m0s"},
		{"reminder after expiry", block("    expires_after: 5m\n    reminder_before: 10m\n"), "defaults.approval.reminder_before: 10m0s must be shorter than expires_after 5m0s"},
		{"in a tenant", "version: 1\ntenants:\n  t1:\n    approval: {sets: [{rules: [{name: a, approve: 11, filter: {roles: [x]}}]}]}\n", "tenants.t1.approval.sets[0].rules[0].approve: must be between 1 and 10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.src), "a.yaml")
			require.Error(t, err)
			var le *LoadError
			require.True(t, errors.As(err, &le), "%v is not a LoadError", err)
			require.Contains(t, err.Error(), tc.want)
			require.Positive(t, le.Line, "no line in %v", err)
		})
	}
}

func repeatSets(n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += ", "
		}
		s += "{rules: [{name: r" + string(rune('a'+i)) + ", approve: 1, filter: {roles: [x]}}]}"
	}
	return s
}
