package coordinator

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/replay"
	"github.com/decision-fabric/fabric/internal/store"
)

// reclassifyPolicy has three impacts, an approval rule that does not depend on the
// impact, and two approvers: medium impact alone asks for no approval.
const reclassifyPolicy = `version: 1
defaults:
  quorum: majority
  approvals_required: 2
  approval_when: abs_replica_delta >= 6
  impact_rules:
    - name: big
      when: abs_replica_delta >= 10
      impact: high
    - name: some
      when: abs_replica_delta >= 3
      impact: medium
`

// TestReplayReclassifiesAtAgreementAsTheCoordinator: for the same policy, pre-state,
// submitted and agreed change, the coordinator's reclassification at agreement and the
// replay's re-decision (internal/replay, the candidate being that policy) end at the
// same impact and the same approvals (classify.Reclassify, one rule). Before the rule
// was shared they differed: an agreed change of a higher impact that asks for no
// approval by itself (low → medium here) is put on the approval path by the
// coordinator, and the replay let it through.
func TestReplayReclassifiesAtAgreementAsTheCoordinator(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	s, _ := f.withService(t, "reclassify", reclassifyPolicy)
	e := f.engines["reclassify"]
	ctx := proposerContext()
	pre, err := f.world.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	scale := func(delta int) string {
		return fmt.Sprintf(`{"action":"scale","target":"svc","regions":["eu-west"],"parameters":{"replicas_delta":%d}}`, delta)
	}
	for _, c := range []struct {
		submitted, agreed int
		impact            string
		approvals         int32 // 0: no approval required
	}{
		{1, 1, policy.ImpactLow, 0},
		{1, 2, policy.ImpactLow, 0},
		{1, 4, policy.ImpactMedium, 1}, // higher impact, no approval by itself: approval all the same
		{1, 7, policy.ImpactMedium, 2}, // approval newly required
		{1, 20, policy.ImpactHigh, 2},
		{4, 1, policy.ImpactMedium, 0}, // lower: the submission's classification stands
		{4, 7, policy.ImpactMedium, 2},
		{7, 4, policy.ImpactMedium, 2},
		{20, 1, policy.ImpactHigh, 2},
		{20, 12, policy.ImpactHigh, 2},
	} {
		name := fmt.Sprintf("submitted %+d, agreed %+d", c.submitted, c.agreed)
		sub, agreed := manifest(t, scale(c.submitted)), manifest(t, scale(c.agreed))

		// The coordinator: classified at submission, reclassified at agreement.
		res, err := s.evaluatePolicy(ctx, "t1", sub, pre)
		require.NoError(t, err, name)
		p := &store.Proposal{ID: newID(time.Now()), TenantID: "t1", Status: stNegotiating, Impact: res.decision.Impact}
		d := &coordinatorv1.Proposal{Policy: res.record}
		impact, approvals := p.Impact, int32(0)
		if d.GetPolicy().GetApprovalRequired() {
			approvals = d.GetPolicy().GetApprovalsRequired()
		}
		if re := s.reclassify(ctx, p, d, agreed, pre, nil, stageAgreement); re != nil {
			require.NoError(t, re.refused, name)
			require.True(t, re.record.GetApprovalRequired(), name)
			impact, approvals = re.to, re.record.GetApprovalsRequired()
		}
		require.Equal(t, c.impact, impact, "coordinator: %s", name)
		require.Equal(t, c.approvals, approvals, "coordinator: %s", name)

		// The replay of that decision under the same policy.
		r := replay.Redecide(replay.Record{PreState: pre, Proposal: &coordinatorv1.Proposal{
			Id: p.ID, TenantId: "t1", Status: coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SCORED,
			Manifest: sub, AgreedManifest: agreed, Impact: p.Impact, Policy: res.record,
		}}, replay.Candidate{Policy: e})
		require.Equal(t, c.impact, r.GetCandidateImpact(), "replay: %s: %v", name, r.GetReasons())
		require.Equal(t, c.approvals, r.GetApprovalsRequired(), "replay: %s: %v", name, r.GetReasons())
	}
}
