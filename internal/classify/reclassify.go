package classify

import "github.com/decision-fabric/fabric/internal/policy"

// Gate is what a classification asks of a decision before it may proceed: its impact
// and the human approvals it needs.
type Gate struct {
	Impact            string
	ApprovalRequired  bool
	ApprovalsRequired int
}

// GateOf is the gate of a policy decision.
func GateOf(d policy.Decision) Gate {
	return Gate{Impact: d.Impact, ApprovalRequired: d.ApprovalRequired, ApprovalsRequired: d.ApprovalsRequired}
}

// Reclassify is the one rule for a change classified again: before is the
// classification the proposal was negotiated (and perhaps approved) under, now the
// policy's answer on the change that will actually be made (the agreed manifest at
// agreement, the exact change at enactment; a replay's candidate on the agreed
// manifest). The coordinator and the replay both apply it.
//
// When now asks for nothing more than before (not a higher impact by
// policy.ImpactRank, no approval newly required, no more approvers), before stands
// exactly as it was and raised is false. Anything more puts the decision on the
// approval path: the higher of the two impacts, approval required, and the approvers
// of either, at least one; raised is true. A higher impact alone requires approval,
// even when the policy would not ask for one at that impact: the regions agreed on
// more than was classified, and a person looks at it.
//
// It does not fail closed by itself: a classification that failed is made high with
// approval by the caller before it asks (an unknown impact ranks below low).
func Reclassify(before, now Gate) (g Gate, raised bool) {
	raised = policy.ImpactRank(now.Impact) > policy.ImpactRank(before.Impact) ||
		now.ApprovalRequired && !before.ApprovalRequired ||
		now.ApprovalsRequired > before.ApprovalsRequired
	if !raised {
		return before, false
	}
	return Gate{
		Impact:            policy.MaxImpact(before.Impact, now.Impact),
		ApprovalRequired:  true,
		ApprovalsRequired: max(now.ApprovalsRequired, before.ApprovalsRequired, 1),
	}, true
}
