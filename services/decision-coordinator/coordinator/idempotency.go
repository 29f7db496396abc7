package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/store"
)

// Idempotency-Key replays (IETF httpapi idempotency-key draft): a request with the
// key of an earlier proposal of the tenant gets that proposal back when it is the
// same request, and 422 (gRPC FAILED_PRECONDITION, ErrorInfo
// IDEMPOTENCY_KEY_REUSED) when it is not. "The same request" is compared on a
// fingerprint, the SHA-256 of the request's RFC 8785 canonical JSON: the same
// members in another order or spacing, or over gRPC instead of REST, are the same
// request.

// storedKey is an Idempotency-Key as the store keeps it and replays compare it: the
// key itself, unless the redactor finds personal data or a secret in it; then its
// redacted form followed by "~sha256:" and the hex SHA-256 of the tenant and the
// key. The raw value is thus never stored (nor logged or traced from the store),
// as the audit log never keeps it, and two keys that redact alike ("<REDACTED:email>"
// for every address) still name different proposals.
func storedKey(tenantID, key string) string {
	r := redact.String(key)
	if r == key {
		return key
	}
	sum := sha256.Sum256([]byte(tenantID + "\x00" + key))
	return r + "~sha256:" + hex.EncodeToString(sum[:])
}

// requestFingerprint is the lower-case hex SHA-256 of req's canonical JSON.
func requestFingerprint(req *coordinatorv1.SubmitProposalRequest) (string, error) {
	b, err := canonical.Proto(req)
	if err != nil {
		return "", fmt.Errorf("coordinator: canonical request: %w", err)
	}
	return canonical.SHA256Hex(b), nil
}

// replay answers a request whose Idempotency-Key names prev: prev itself when the
// request is the one that created it (or prev predates fingerprints), and
// IdempotencyKeyReused otherwise, without saying anything about prev.
func (s *Service) replay(ctx context.Context, prev *store.Proposal, fingerprint string) (*coordinatorv1.SubmitProposalResponse, error) {
	if prev.RequestSHA256 != "" && prev.RequestSHA256 != fingerprint {
		s.deps.Logger.InfoContext(ctx, "idempotency key reused with another request", "tenant_id", prev.TenantID)
		return nil, server.IdempotencyKeyReused("Idempotency-Key was already used with a different request; send the same request to get its answer again, or use a new key for a new request")
	}
	out, err := toProto(prev)
	if err != nil {
		return nil, err
	}
	return &coordinatorv1.SubmitProposalResponse{Proposal: out, Created: false}, nil
}
