package auditlog

import (
	"encoding/base64"
	"encoding/hex"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/store"
)

// EntryProto is the API form of a stored entry, with its inclusion proof when
// one is given. Every field is a hash, an identifier, a redacted string or the
// redacted summary: the store holds nothing else.
func EntryProto(e *store.AuditEntry, proof [][]byte) *auditorv1.AuditEntry {
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

// EntryFromProto is the inverse of EntryProto without the proof: the entry as
// EntryHash hashes it, for a client that recomputes entry_hash.
func EntryFromProto(p *auditorv1.AuditEntry) *store.AuditEntry {
	return &store.AuditEntry{
		TenantID:       p.GetTenantId(),
		Index:          p.GetIndex(),
		ProposalID:     p.GetProposalId(),
		Event:          p.GetEvent(),
		Actor:          p.GetActor(),
		TraceID:        p.GetTraceId(),
		PayloadSHA256:  p.GetPayloadSha256(),
		Summary:        []byte(p.GetSummary()),
		IdempotencyKey: p.GetIdempotencyKey(),
		PrevHash:       p.GetPrevHash(),
		EntryHash:      p.GetEntryHash(),
		CreatedAt:      p.GetCreatedAt().AsTime(),
	}
}

// CheckpointProto is the API form of a signed checkpoint, with v's public keys
// (for pinning: a reader verifies with keys it obtained out of band).
func CheckpointProto(c *Checkpoint, v *Verifier) *auditorv1.AuditCheckpoint {
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
