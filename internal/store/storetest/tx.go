package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

func testInTxCommit(t *testing.T, s store.Store) {
	var p *store.Proposal
	err := s.InTx(ctx(t), func(tx store.Store) error {
		require.Equal(t, s.Backend(), tx.Backend())
		require.NoError(t, tx.Ping(ctx(t)))
		p = mustCreate(t, tx, NewProposal("t"))
		got, err := tx.Proposals().Get(ctx(t), "t", p.ID)
		require.NoError(t, err, "own writes are visible inside the tx")
		require.Equal(t, p, got)
		if err := tx.Snapshots().Put(ctx(t), newSnapshot(p, "pre", `{}`)); err != nil {
			return err
		}
		if _, err := tx.Proposals().UpdateStatus(ctx(t), "t", p.ID, "SUBMITTED", "APPROVED", 1); err != nil {
			return err
		}
		_, err = tx.WorldStates().Put(ctx(t), &store.WorldState{TenantID: "t", Region: "r", Target: "x", State: []byte(`{}`)}, 0)
		return err
	})
	require.NoError(t, err)

	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, "APPROVED", got.Status)
	snaps, err := s.Snapshots().List(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Len(t, snaps, 1)
	_, err = s.WorldStates().Get(ctx(t), "t", "r", "x")
	require.NoError(t, err)
}

func testInTxRollback(t *testing.T, s store.Store) {
	boom := fmt.Errorf("boom")
	p := NewProposal("t")
	err := s.InTx(ctx(t), func(tx store.Store) error {
		mustCreate(t, tx, p)
		_, err := tx.WorldStates().Put(ctx(t), &store.WorldState{TenantID: "t", Region: "r", Target: "x", State: []byte(`{}`)}, 0)
		require.NoError(t, err)
		return boom
	})
	require.ErrorIs(t, err, boom, "fn's error is returned")

	_, err = s.Proposals().Get(ctx(t), "t", p.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "rolled back")
	_, err = s.WorldStates().Get(ctx(t), "t", "r", "x")
	require.ErrorIs(t, err, store.ErrNotFound, "rolled back")

	// A store error inside fn rolls back too, and the store is usable afterwards.
	dup := mustCreate(t, s, NewProposal("t"))
	err = s.InTx(ctx(t), func(tx store.Store) error {
		mustCreate(t, tx, NewProposal("t"))
		again := NewProposal("t")
		again.ID = dup.ID
		_, _, err := tx.Proposals().Create(ctx(t), again)
		return err
	})
	require.ErrorIs(t, err, store.ErrConflict)
	list, err := s.Proposals().List(ctx(t), "t", "", 0)
	require.NoError(t, err)
	require.Equal(t, []*store.Proposal{dup}, list)
}

func testInTxPanic(t *testing.T, s store.Store) {
	p := NewProposal("t")
	require.PanicsWithValue(t, "kaboom", func() {
		_ = s.InTx(ctx(t), func(tx store.Store) error {
			mustCreate(t, tx, p)
			panic("kaboom")
		})
	})
	_, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "rolled back on panic")
	mustCreate(t, s, NewProposal("t")) // the writer is free again
}

func testInTxNested(t *testing.T, s store.Store) {
	outer, inner := NewProposal("t"), NewProposal("t")
	boom := fmt.Errorf("inner failed")
	err := s.InTx(ctx(t), func(tx store.Store) error {
		mustCreate(t, tx, outer)
		err := tx.InTx(ctx(t), func(tx2 store.Store) error {
			mustCreate(t, tx2, inner)
			return boom
		})
		require.ErrorIs(t, err, boom)
		_, err = tx.Proposals().Get(ctx(t), "t", inner.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "inner work undone")

		// A failing statement inside a nested tx leaves the outer tx usable (Postgres aborts otherwise).
		err = tx.InTx(ctx(t), func(tx2 store.Store) error {
			dup := NewProposal("t")
			dup.ID = outer.ID
			_, _, err := tx2.Proposals().Create(ctx(t), dup)
			return err
		})
		require.ErrorIs(t, err, store.ErrConflict)
		return tx.InTx(ctx(t), func(tx2 store.Store) error {
			_, err := tx2.Proposals().UpdateStatus(ctx(t), "t", outer.ID, "SUBMITTED", "APPROVED", 1)
			return err
		})
	})
	require.NoError(t, err)
	got, err := s.Proposals().Get(ctx(t), "t", outer.ID)
	require.NoError(t, err)
	require.Equal(t, "APPROVED", got.Status)
	_, err = s.Proposals().Get(ctx(t), "t", inner.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// testInTxContextEnded: a transaction whose context ends while fn runs (the client
// went away mid-request) commits nothing, even though fn's statements succeeded, and
// InTx says why; so does a single write whose context ended before it ran.
func testInTxContextEnded(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(ctx(t))
	p := NewProposal("t")
	err := s.InTx(c, func(tx store.Store) error {
		mustCreate(t, tx, p)
		cancel() // the client gives up after the write, before the commit
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Proposals().Get(ctx(t), "t", p.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "nothing of a cancelled request is committed")

	gone := NewProposal("t")
	_, _, err = s.Proposals().Create(c, gone)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Proposals().Get(ctx(t), "t", gone.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	mustCreate(t, s, NewProposal("t")) // the store goes on taking writes
}
