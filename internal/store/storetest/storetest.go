// Package storetest is the conformance suite every store.Store backend must
// pass. Backends call Run from their own tests with a constructor that returns
// a fresh, empty, migrated Store (and closes it in t.Cleanup).
package storetest

import (
	"context"
	"testing"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// Run runs every conformance subtest. Each subtest gets its own Store from
// newStore and runs in parallel with the others.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, tc := range append([]struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Backend", testBackend},
		{"ProposalRoundTrip", testProposalRoundTrip},
		{"ProposalDefaults", testProposalDefaults},
		{"ProposalInvalid", testProposalInvalid},
		{"ProposalDuplicateID", testProposalDuplicateID},
		{"ProposalTenantIsolation", testProposalTenantIsolation},
		{"ProposalList", testProposalList},
		{"ProposalListCreated", testProposalListCreated},
		{"ProposalHistory", testProposalHistory},
		{"ClaimWork", testClaimWork},
		{"ClaimWorkConcurrent", testClaimWorkConcurrent},
		{"Outbox", testOutbox},
		{"ProposalIdempotency", testProposalIdempotency},
		{"ProposalIdempotencyConcurrent", testProposalIdempotencyConcurrent},
		{"ProposalConcurrentWriters", testProposalConcurrentWriters},
		{"UpdateStatus", testUpdateStatus},
		{"UpdateStatusWrongFrom", testUpdateStatusWrongFrom},
		{"UpdateStatusStaleVersion", testUpdateStatusStaleVersion},
		{"UpdateStatusNotFound", testUpdateStatusNotFound},
		{"UpdateStatusConcurrent", testUpdateStatusConcurrent},
		{"Advance", testAdvance},
		{"AdvanceConsensusBundle", testAdvanceConsensusBundle},
		{"AdvanceImpact", testAdvanceImpact},
		{"SnapshotPutList", testSnapshotPutList},
		{"SnapshotDuplicate", testSnapshotDuplicate},
		{"SnapshotTenantScope", testSnapshotTenantScope},
		{"SnapshotInvalid", testSnapshotInvalid},
		{"WorldStatePutGet", testWorldStatePutGet},
		{"WorldStateVersionConflict", testWorldStateVersionConflict},
		{"WorldStateTenantIsolation", testWorldStateTenantIsolation},
		{"InTxCommit", testInTxCommit},
		{"InTxRollback", testInTxRollback},
		{"InTxPanic", testInTxPanic},
		{"InTxNested", testInTxNested},
		{"InTxContextEnded", testInTxContextEnded},
	}, append(append(append(append(negotiationTests, auditLogTests...), mfaTests...), approvalTests...), append(append(webAuthnTests, canaryRunTests...), eventOutboxTests...)...)...) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// NewID returns a fresh canonical ULID string.
func NewID() string { return ulid.Make().String() }

// NewProposal returns a valid proposal of tenant with a fresh ID and every
// field set to a non-zero value (IdempotencyKey is left empty).
func NewProposal(tenant string) *store.Proposal {
	id := NewID()
	manifest := []byte(`{"id":"` + id + `","steps":[{"op":"scale","replicas":3}]}`)
	return &store.Proposal{
		ID:             id,
		TenantID:       tenant,
		Status:         "SUBMITTED",
		Impact:         "medium",
		DryRun:         true,
		Manifest:       manifest,
		ManifestSHA256: canonical.SHA256Hex(manifest),
		Metadata:       []byte(`{"source":"storetest","n":1}`),
		PreStateSHA256: canonical.SHA256Hex([]byte(`{"pre":true}`)),
		CreatedBy:      "user:alice",
		TraceID:        "4bf92f3577b34da6a3ce929d0e0e4736",
		Decision:       []byte(`{}`),
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func mustCreate(t *testing.T, s store.Store, p *store.Proposal) *store.Proposal {
	t.Helper()
	got, created, err := s.Proposals().Create(ctx(t), p)
	require.NoError(t, err)
	require.True(t, created)
	return got
}

func testBackend(t *testing.T, s store.Store) {
	require.Contains(t, []string{store.BackendSQLite, store.BackendPostgres}, s.Backend())
	require.NoError(t, s.Ping(ctx(t)))
}
