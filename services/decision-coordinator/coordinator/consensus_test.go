package coordinator

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
)

// The enactment check: outside simulation a missing bundle is refused, saying why none
// was made; in simulation it is allowed; a bundle that is present must verify in both.
func TestVerifyConsensusPolicy(t *testing.T) {
	t.Parallel()
	m := &typesv1.Manifest{Action: "scale", Target: "x"}
	raw, err := canonical.Proto(m)
	require.NoError(t, err)
	p := &store.Proposal{ID: "01J00000000000000000000000", TenantID: "t1", Manifest: raw, ManifestSHA256: canonical.SHA256Hex(raw)}
	ring := &signing.Keyring{}
	prod := &Service{deps: Deps{TrustedKeys: ring, RequireSignature: true, RequireConsensusBundle: true}}
	sim := &Service{deps: Deps{TrustedKeys: ring}}

	none := &coordinatorv1.Proposal{ConsensusError: "quorum certificate: votes[0] (region \"eu-west\"): signature: does not verify"}
	err = prod.verifyConsensus(p, none)
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "no consensus bundle (P2)")
	require.Contains(t, status.Convert(err).Message(), `region "eu-west"`, "the refusal says why no bundle was made")
	require.NoError(t, sim.verifyConsensus(p, none), "simulation enacts proposals without a bundle")

	doc, err := structpb.NewStruct(map[string]any{"type": "decision-fabric/consensus-bundle/v1"})
	require.NoError(t, err)
	bogus := &coordinatorv1.Proposal{ConsensusBundle: &typesv1.ConsensusBundle{Bundle: doc, Sha256: "00",
		Signature: &typesv1.ManifestSignature{Signature: "AAAA", KeyId: "ff"}}}
	for name, s := range map[string]*Service{"production": prod, "simulation": sim} {
		err := s.verifyConsensus(p, bogus)
		require.Equal(t, codes.FailedPrecondition, status.Code(err), name)
		require.Contains(t, status.Convert(err).Message(), "consensus bundle does not verify (P2): consensus bundle: sha256", name)
	}
}
