package negotiator_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

// A rehearsal plays the same rounds as a real negotiation — the counters merged into
// round 2, the same agreed manifest, votes signed by the regions' keys — and stores
// nothing: no negotiation, no vote, no metric of real negotiations.
func TestRehearsalNegotiatesLikeTheRealThingAndStoresNothing(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			st := storeOpener(t, backend)()
			h := newService(t, st, &proposals{}, capacities)
			got, err := h.svc.RehearseNegotiation(as("t1"), &negotiatorv1.RehearseNegotiationRequest{ProposalId: "p1", Manifest: scale(12)})
			require.NoError(t, err)
			require.Equal(t, agreed, got.GetState(), got.GetReason())
			require.Equal(t, int32(2), got.GetRounds())
			require.Equal(t, 10.0, got.GetFinalManifest().GetParameters().GetFields()["replicas"].GetNumberValue())
			require.Equal(t, negotiatorv1.QuorumRule_QUORUM_RULE_MAJORITY, got.GetQuorumRule())
			require.GreaterOrEqual(t, got.GetAccept(), int32(3))

			// Every vote verifies with its region's key over the proposal's digest, as
			// in a real negotiation (round 2's offer is the merged one).
			keys := h.svc.RegionKeys()
			_, digest, err := manifestpkg.Canonical(scale(12))
			require.NoError(t, err)
			rounds := map[int32]int{}
			for _, v := range got.GetVotes() {
				pub, err := regionkeys.ParsePublicKeyPEM(string(keys[v.GetRegion()]))
				require.NoError(t, err)
				require.NoError(t, negotiator.VerifyVote(pub, digest, v.GetRound(), v.GetRegion(), v.GetVerdict(), v.GetSignature()),
					"round %d vote of %s", v.GetRound(), v.GetRegion())
				rounds[v.GetRound()]++
			}
			require.Equal(t, 5, rounds[1], "round 1 needed every vote to see it cannot pass")
			require.GreaterOrEqual(t, rounds[2], 3)

			ns, err := st.Negotiations().ListByProposal(t.Context(), "t1", "p1", 10)
			require.NoError(t, err)
			require.Empty(t, ns, "a rehearsal stores no negotiation")
			families, err := h.reg.Gather()
			require.NoError(t, err)
			for _, fam := range families {
				if fam.GetName() == "fabric_negotiation_votes_total" {
					for _, m := range fam.GetMetric() {
						require.Zero(t, m.GetCounter().GetValue(), "no vote of a real negotiation was counted")
					}
				}
			}
			require.False(t, proto.Equal(got.GetFinalManifest(), scale(12)))
		})
	}
}

// A rehearsal ends like the real negotiation would: rejected by a quorum, or refused
// for a region without an agent.
func TestRehearsalRejectsAndRefuses(t *testing.T) {
	t.Parallel()
	h := newService(t, storeOpener(t, store.BackendSQLite)(), &proposals{}, twoRefuse)
	got, err := h.svc.RehearseNegotiation(as("t1"), &negotiatorv1.RehearseNegotiationRequest{ProposalId: "p1", Manifest: scale(4),
		QuorumRule: negotiatorv1.QuorumRule_QUORUM_RULE_UNANIMOUS})
	require.NoError(t, err)
	require.Equal(t, rejected, got.GetState(), got.GetReason())

	m := scale(4)
	m.Regions = []string{"mars-1"}
	_, err = h.svc.RehearseNegotiation(as("t1"), &negotiatorv1.RehearseNegotiationRequest{ProposalId: "p1", Manifest: m})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
}
