package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

func testOutbox(t *testing.T, s store.Store) {
	ob := s.Outbox()
	old := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var seqs []int64
	for i, e := range []*store.OutboxEntry{
		{TenantID: "t1", ProposalID: "p1", Kind: store.OutboxEntryKind, Event: "proposal.submitted", Payload: []byte(`{"a":1}`), IdempotencyKey: "k1",
			Actor: "user:alice", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", CreatedAt: old},
		{TenantID: "t2", ProposalID: "p2", Kind: store.OutboxSnapshotKind, Event: "pre", Payload: []byte(`{"sha256":"x"}`), IdempotencyKey: "k2", CreatedAt: old},
		{TenantID: "t1", ProposalID: "p1", Kind: store.OutboxEntryKind, Event: "proposal.negotiating", Payload: []byte(`{}`), IdempotencyKey: "k3"},
	} {
		got, err := ob.Add(ctx(t), e)
		require.NoError(t, err)
		require.NotZero(t, got.Seq)
		require.Equal(t, e.Event, got.Event)
		require.Equal(t, e.Payload, got.Payload)
		if i > 0 {
			require.Greater(t, got.Seq, seqs[i-1], "seq grows in insertion order")
		}
		seqs = append(seqs, got.Seq)
	}

	all, err := ob.List(ctx(t), 0, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.Equal(t, "k1", all[0].IdempotencyKey)
	require.Equal(t, old, all[0].CreatedAt)
	require.Equal(t, "user:alice", all[0].Actor)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", all[0].TraceID)

	aged, err := ob.List(ctx(t), 0, old.Add(time.Hour), 0)
	require.NoError(t, err)
	require.Len(t, aged, 2, "notAfter leaves out the fresh entry")

	after, err := ob.List(ctx(t), seqs[0], time.Time{}, 1)
	require.NoError(t, err)
	require.Len(t, after, 1)
	require.Equal(t, seqs[1], after[0].Seq)

	require.NoError(t, ob.Delete(ctx(t), []int64{seqs[0], seqs[2], 999999}))
	left, err := ob.List(ctx(t), 0, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, seqs[1], left[0].Seq)

	// Written in a transaction that fails, an entry is not stored.
	errAbort := store.ErrConflict
	err = s.InTx(ctx(t), func(tx store.Store) error {
		if _, err := tx.Outbox().Add(ctx(t), &store.OutboxEntry{TenantID: "t1", ProposalID: "p9", Kind: store.OutboxEntryKind,
			Event: "proposal.enacted", Payload: []byte(`{}`), IdempotencyKey: "k9"}); err != nil {
			return err
		}
		return errAbort
	})
	require.ErrorIs(t, err, errAbort)
	left, err = ob.List(ctx(t), 0, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, left, 1)

	for _, bad := range []*store.OutboxEntry{
		{ProposalID: "p", Kind: store.OutboxEntryKind, Event: "e", Payload: []byte(`{}`), IdempotencyKey: "k"},
		{TenantID: "t", ProposalID: "p", Kind: "other", Event: "e", Payload: []byte(`{}`), IdempotencyKey: "k"},
		{TenantID: "t", ProposalID: "p", Kind: store.OutboxEntryKind, Event: "e", Payload: []byte(`{`), IdempotencyKey: "k"},
		{TenantID: "t", ProposalID: "p", Kind: store.OutboxEntryKind, Event: "e", Payload: []byte(`{}`)},
	} {
		_, err := ob.Add(ctx(t), bad)
		require.ErrorIs(t, err, store.ErrInvalid)
	}
}
