package storetest

import (
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

func newSnapshot(p *store.Proposal, kind string, state string) *store.Snapshot {
	return &store.Snapshot{ID: NewID(), ProposalID: p.ID, TenantID: p.TenantID, Kind: kind,
		SHA256: canonical.SHA256Hex([]byte(state)), State: []byte(state)}
}

func testSnapshotPutList(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	// Bytes must survive exactly, including key order and escapes.
	post := newSnapshot(p, "post", `{"z":1,"a":"\u00e9\n","n":[1.5e+30,null]}`)
	post.CreatedAt = time.Date(2025, 6, 1, 12, 0, 0, 999999999, time.UTC)
	require.NoError(t, s.Snapshots().Put(ctx(t), post))
	require.Equal(t, time.Date(2025, 6, 1, 12, 0, 0, 999999000, time.UTC), post.CreatedAt, "Put normalises CreatedAt in place")

	pre := newSnapshot(p, "pre", `{"replicas":1}`)
	pre.SHA256 = "" // computed by Put
	pre.CreatedAt = time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC)
	require.NoError(t, s.Snapshots().Put(ctx(t), pre))
	require.Equal(t, canonical.SHA256Hex(pre.State), pre.SHA256)

	got, err := s.Snapshots().List(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, []*store.Snapshot{pre, post}, got, "ordered by created_at")

	none, err := s.Snapshots().List(ctx(t), "t", NewID())
	require.NoError(t, err)
	require.NotNil(t, none)
	require.Empty(t, none)
}

func testSnapshotDuplicate(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	require.NoError(t, s.Snapshots().Put(ctx(t), newSnapshot(p, "pre", `{"a":1}`)))
	err := s.Snapshots().Put(ctx(t), newSnapshot(p, "pre", `{"a":2}`))
	require.ErrorIs(t, err, store.ErrConflict, "(proposal_id, kind) is unique")

	first := newSnapshot(p, "post", `{"a":3}`)
	require.NoError(t, s.Snapshots().Put(ctx(t), first))
	again := newSnapshot(p, "post", `{"a":3}`)
	again.ID = first.ID
	require.ErrorIs(t, s.Snapshots().Put(ctx(t), again), store.ErrConflict)

	got, err := s.Snapshots().List(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []byte(`{"a":1}`), got[0].State)
}

func testSnapshotTenantScope(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("tenant-a"))
	require.NoError(t, s.Snapshots().Put(ctx(t), newSnapshot(p, "pre", `{}`)))

	other := newSnapshot(p, "post", `{}`)
	other.TenantID = "tenant-b"
	require.ErrorIs(t, s.Snapshots().Put(ctx(t), other), store.ErrNotFound, "the proposal of another tenant does not exist")

	missing := newSnapshot(&store.Proposal{ID: NewID(), TenantID: "tenant-a"}, "pre", `{}`)
	require.ErrorIs(t, s.Snapshots().Put(ctx(t), missing), store.ErrNotFound)

	got, err := s.Snapshots().List(ctx(t), "tenant-b", p.ID)
	require.NoError(t, err)
	require.Empty(t, got)
}

func testSnapshotInvalid(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	for name, mutate := range map[string]func(sn *store.Snapshot){
		"bad kind":      func(sn *store.Snapshot) { sn.Kind = "during" },
		"bad ID":        func(sn *store.Snapshot) { sn.ID = "x" },
		"not JSON":      func(sn *store.Snapshot) { sn.State = []byte("nope"); sn.SHA256 = "" },
		"hash mismatch": func(sn *store.Snapshot) { sn.SHA256 = canonical.SHA256Hex([]byte("other")) },
		"no tenant":     func(sn *store.Snapshot) { sn.TenantID = "" },
	} {
		require.ErrorIs(t, s.Snapshots().Put(ctx(t), func() *store.Snapshot {
			sn := newSnapshot(p, "pre", `{}`)
			mutate(sn)
			return sn
		}()), store.ErrInvalid, name)
	}
}
