package replay_test

import (
	"testing"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/replay"
)

// BenchmarkRedecide measures re-deciding one decision (three regions, a candidate
// policy and region set): classification against the recorded pre-state, the recount
// and the approval replay. A replay of MaxProposals decisions costs 100 of these besides
// reading and verifying the records.
func BenchmarkRedecide(b *testing.B) {
	rec := decision(b, "svc", 3, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED, "low", "eu-west", "us-east", "ap-south")
	cand := candidate(b, strict)
	cand.Regions = []replay.Region{{Name: "eu-west", Weight: 2}, {Name: "us-east"}}
	b.ReportAllocs()
	for b.Loop() {
		if r := replay.Redecide(rec, cand); r.GetCandidateOutcome() == "" {
			b.Fatal("no outcome")
		}
	}
}
