package auditor

import (
	"encoding/base64"
	"encoding/hex"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/store"
)

// entryProto is the API form of a stored entry, with its inclusion proof when
// one is given. Every field is a hash, an identifier, a redacted string or the
// redacted summary: the store holds nothing else.
func entryProto(e *store.AuditEntry, proof [][]byte) *auditorv1.AuditEntry {
	out := &auditorv1.AuditEntry{
		Index:          e.Index,
		ProposalId:     e.ProposalID,
		TenantId:       e.TenantID,
		Event:          e.Event,
		Actor:          e.Actor,
		TraceId:        e.TraceID,
		PayloadSha256:  e.PayloadSHA256,
		EntryHash:      e.EntryHash,
		CreatedAt:      timestamppb.New(e.CreatedAt),
		PrevHash:       e.PrevHash,
		Summary:        string(e.Summary),
		IdempotencyKey: e.IdempotencyKey,
	}
	for _, h := range proof {
		out.InclusionProof = append(out.InclusionProof, hex.EncodeToString(h))
	}
	return out
}

func checkpointProto(c *auditlog.Checkpoint, v *auditlog.Verifier) *auditorv1.AuditCheckpoint {
	return &auditorv1.AuditCheckpoint{
		Size:             int64(c.Size),
		RootHash:         hex.EncodeToString(c.Root),
		CreatedAt:        timestamppb.New(c.Time),
		Origin:           c.Origin,
		Note:             string(c.Note),
		Mldsa65Signature: base64.StdEncoding.EncodeToString(c.MLDSASignature),
		NoteVerifierKey:  v.NoteVerifierKey(),
		Mldsa65PublicKey: string(v.MLDSAPublicKeyPEM()),
		Mldsa65KeyId:     c.MLDSAKeyID,
	}
}
