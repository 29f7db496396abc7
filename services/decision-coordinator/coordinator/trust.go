package coordinator

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/signing"
)

// verifyManifest enforces P2 on a submission: a signature, when present, must be made
// by a trusted key over the manifest's RFC 8785 canonical JSON; outside simulation a
// signature is required. The public key in the request only names the key: trust comes
// from the keyring (the composer's key and the configured trusted keys), never from the
// request itself. It returns the verified signature as the decision record keeps it
// (key_id and the trusted key's public_key filled in), nil for an unsigned manifest.
func (s *Service) verifyManifest(req *coordinatorv1.SubmitProposalRequest) (*typesv1.ManifestSignature, error) {
	return s.verifyCanonicalManifest(req, nil)
}

// verifyCanonicalManifest is verifyManifest for a manifest already in canonical form
// (payload; nil: computed here), so that a submission canonicalises it once.
func (s *Service) verifyCanonicalManifest(req *coordinatorv1.SubmitProposalRequest, payload []byte) (*typesv1.ManifestSignature, error) {
	sig := req.GetSignature()
	if sig == nil {
		if s.deps.RequireSignature {
			return nil, status.Error(codes.PermissionDenied, "unsigned manifest refused outside simulation (P2): compose it with POST /compose or sign its canonical JSON with cosign")
		}
		return nil, nil
	}
	keyID := sig.GetKeyId()
	if keyID == "" && sig.GetPublicKey() != "" {
		id, err := signing.KeyIDFromPEM([]byte(sig.GetPublicKey()))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "signature.public_key: %v", err)
		}
		keyID = id
	}
	if keyID == "" {
		return nil, status.Error(codes.InvalidArgument, "signature.key_id or signature.public_key is required with a signature")
	}
	if payload == nil {
		var err error
		if payload, _, err = manifestpkg.Canonical(req.GetManifest()); err != nil {
			return nil, fmt.Errorf("coordinator: canonical manifest: %w", err)
		}
	}
	err := s.deps.TrustedKeys.Verify(keyID, payload, sig.GetSignature())
	switch {
	case err == nil:
		pub, _ := s.deps.TrustedKeys.PublicKeyPEM(keyID)
		return &typesv1.ManifestSignature{Signature: strings.TrimSpace(sig.GetSignature()), KeyId: keyID, PublicKey: string(pub)}, nil
	case errors.Is(err, signing.ErrUnknownKey):
		return nil, status.Errorf(codes.PermissionDenied, "manifest signed by untrusted key %s (P2)", short(keyID))
	case errors.Is(err, signing.ErrBadSignature):
		return nil, status.Error(codes.PermissionDenied, "manifest signature does not verify (P2): the manifest was changed after signing, or signed with another key")
	default:
		return nil, status.Errorf(codes.InvalidArgument, "signature: %v", err)
	}
}
