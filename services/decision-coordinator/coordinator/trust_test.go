package coordinator

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	_, err = prod.verifyManifest(unsigned)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "production refuses unsigned manifests")
	got, err := sim.verifyManifest(unsigned)
	require.NoError(t, err, "simulation accepts them")
	require.Nil(t, got, "no signature to record")

	payload, err := canonical.Proto(m)
	require.NoError(t, err)
	sig, err := key.Sign(payload)
	require.NoError(t, err)
	signed := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: sig, KeyId: key.KeyID()}}
	got, err = prod.verifyManifest(signed)
	require.NoError(t, err)
	require.True(t, proto.Equal(&typesv1.ManifestSignature{Signature: sig, KeyId: key.KeyID(), PublicKey: string(key.PublicKeyPEM())}, got),
		"the record names the trusted key that verified it: %v", got)

	byPEM := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: sig, PublicKey: string(key.PublicKeyPEM())}}
	got, err = prod.verifyManifest(byPEM)
	require.NoError(t, err, "the key may be named by its PEM")
	require.Equal(t, key.KeyID(), got.GetKeyId())

	noKey := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: sig}}
	_, err = prod.verifyManifest(noKey)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	garbage := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m, Signature: &typesv1.ManifestSignature{Signature: "!!", KeyId: key.KeyID()}}
	_, err = prod.verifyManifest(garbage)
	require.Error(t, err)
}
