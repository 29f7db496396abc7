package bundle

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/signing"
)

// PartApproval names an approval in errors ("approval 2 (alice)").
const PartApproval = "approval"

// ApprovalPayload is the bytes an approval's signature covers: the RFC 8785 canonical
// JSON of the record (protojson) with its signature left out.
func ApprovalPayload(a *typesv1.Approval) ([]byte, error) {
	c := proto.CloneOf(a)
	c.Signature = nil
	b, err := canonical.Proto(c)
	if err != nil {
		return nil, fmt.Errorf("approval payload: %w", err)
	}
	return b, nil
}

// SignApproval signs a with s and returns a signed copy (a is not modified).
func SignApproval(s signing.Signer, a *typesv1.Approval) (*typesv1.Approval, error) {
	payload, err := ApprovalPayload(a)
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign approval: %w", err)
	}
	out := proto.CloneOf(a)
	out.Signature = &typesv1.ManifestSignature{Signature: sig, KeyId: s.KeyID(), PublicKey: string(s.PublicKeyPEM())}
	return out, nil
}
