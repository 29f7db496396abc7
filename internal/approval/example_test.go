package approval_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/approval"
)

// One sre with the approver role, and one manager or two leads.
func ExampleTally() {
	rules := approval.Rules{Sets: []approval.Set{
		{Rules: []approval.Rule{{Name: "peer", Approve: 1, Deny: 1, Filter: approval.Filter{Roles: []string{"approver"}, Groups: []string{"sre"}}}}},
		{Rules: []approval.Rule{
			{Name: "manager", Approve: 1, Filter: approval.Filter{Groups: []string{"manager"}}},
			{Name: "two-leads", Approve: 2, Filter: approval.Filter{Groups: []string{"lead", "staff"}}},
		}},
	}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	req := approval.Request{ProposalID: "p1", Tenant: "t1", Proposer: "alice", Impact: "high", Created: t0, Expires: t0.Add(30 * time.Minute)}
	votes := []approval.Vote{
		{Approver: "alice", Roles: []string{"approver"}, Groups: []string{"sre"}, Decision: approval.Approve, At: t0.Add(time.Minute)},
		{Approver: "bob", Roles: []string{"approver"}, Groups: []string{"sre"}, Decision: approval.Approve, At: t0.Add(2 * time.Minute)},
	}
	out, refused, _ := approval.Tally(req, rules, votes)
	fmt.Println(strings.Join(out.Explanation, "\n"))
	fmt.Println(refused[0].Err)
	// Output:
	// set 1 satisfied by rule "peer": approved by bob
	// set 2 not satisfied: needs 1 more approver with group manager (rule "manager": 0 of 1), or needs 2 more approvers with group lead or staff (rule "two-leads": 0 of 2)
	// PENDING: waiting for approvers
	// approval: the proposer cannot vote on their own proposal: alice proposed p1
}
