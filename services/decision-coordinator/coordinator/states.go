// states.go holds the proposal's states: the status names as stored, the table of
// legal transitions (transitions) and legal, which every move checks.

package coordinator

import (
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
)

// Status names as stored.
var (
	stSubmitted       = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED)
	stNegotiating     = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_NEGOTIATING)
	stAgreed          = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_AGREED)
	stRejected        = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_REJECTED)
	stExpired         = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_EXPIRED)
	stScored          = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SCORED)
	stPendingApproval = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL)
	stApproved        = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_APPROVED)
	stDenied          = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DENIED)
	stDryRunPassed    = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DRY_RUN_PASSED)
	stDryRunFailed    = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_DRY_RUN_FAILED)
	stEnacted         = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED)
	stRolledBack      = statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ROLLED_BACK)
)

// transitions is the state machine of DESIGN.md: every legal move, and nothing else.
// A move not listed is FAILED_PRECONDITION (HTTP 409) and changes nothing. The moves
// back to PENDING_APPROVAL from APPROVED and the dry-run states are reclassifications:
// the change about to be enacted asks for more approval than was given.
var transitions = map[string][]string{
	stSubmitted:       {stNegotiating},
	stNegotiating:     {stAgreed, stRejected, stExpired},
	stAgreed:          {stScored},
	stScored:          {stPendingApproval, stDryRunPassed, stDryRunFailed},
	stPendingApproval: {stApproved, stDenied, stExpired},
	stApproved:        {stDryRunPassed, stDryRunFailed, stPendingApproval},
	stDryRunFailed:    {stDryRunPassed, stDryRunFailed, stPendingApproval},
	stDryRunPassed:    {stEnacted, stDryRunPassed, stDryRunFailed, stPendingApproval},
	stEnacted:         {stRolledBack},
}

func legal(from, to string) bool {
	for _, t := range transitions[from] {
		if t == to {
			return true
		}
	}
	return false
}
