package coordinator

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/signing"
)

func TestVerifyManifestInProduction(t *testing.T) {
	t.Parallel()
	key, err := signing.GenerateEd25519()
	require.NoError(t, err)
	ring := &signing.Keyring{}
	_, err = ring.Add(key.PublicKeyPEM())
	require.NoError(t, err)
	prod := &Service{deps: Deps{TrustedKeys: ring, RequireSignature: true}}
	sim := &Service{deps: Deps{TrustedKeys: ring}}

	m := &typesv1.Manifest{Action: "scale", Target: "x"}
	unsigned := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m}
	require.Equal(t, codes.PermissionDenied, status.Code(prod.verifyManifest(unsigned)), "production refuses unsigned manifests")
	require.NoError(t, sim.verifyManifest(unsigned), "simulation accepts them")

	payload, err := canonical.Proto(m)
	require.NoError(t, err)
	sig, err := key.Sign(payload)
	require.NoError(t, err)
	signed := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: sig, KeyId: key.KeyID()}}
	require.NoError(t, prod.verifyManifest(signed))

	byPEM := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: sig, PublicKey: string(key.PublicKeyPEM())}}
	require.NoError(t, prod.verifyManifest(byPEM), "the key may be named by its PEM")

	noKey := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: sig}}
	require.Equal(t, codes.InvalidArgument, status.Code(prod.verifyManifest(noKey)))
	garbage := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: "!!", KeyId: key.KeyID()}}
	require.NotNil(t, prod.verifyManifest(garbage))
}
