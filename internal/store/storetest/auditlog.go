package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// auditLogTests are the AuditLogStore conformance subtests; Run runs them.
var auditLogTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"AuditAppendList", testAuditAppendList},
	{"AuditAppendContinuity", testAuditAppendContinuity},
	{"AuditAppendInvalid", testAuditAppendInvalid},
	{"AuditIdempotencyKey", testAuditIdempotencyKey},
	{"AuditTenantIsolation", testAuditTenantIsolation},
	{"AuditConcurrentAppends", testAuditConcurrentAppends},
	{"AuditInTx", testAuditInTx},
	{"AuditCheckpoints", testAuditCheckpoints},
	{"AuditListTenants", testAuditListTenants},
}

// AuditChain returns n entries continuing a tenant's log of size from whose
// last entry hash is prev ("" for an empty log). The hashes are well-formed
// stand-ins (the store checks the chain's shape, not how hashes are computed).
func AuditChain(tenant, proposal string, from int64, prev string, n int) []*store.AuditEntry {
	out := make([]*store.AuditEntry, n)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range out {
		idx := from + int64(i)
		h := canonical.SHA256Hex(fmt.Appendf(nil, "%s/%d/%s", tenant, idx, prev))
		out[i] = &store.AuditEntry{
			TenantID:      tenant,
			Index:         idx,
			ProposalID:    proposal,
			Event:         "proposal.submitted",
			Actor:         "user:alice",
			TraceID:       "4bf92f3577b34da6a3ce929d0e0e4736",
			PayloadSHA256: canonical.SHA256Hex(fmt.Appendf(nil, "payload %d", idx)),
			Summary:       []byte(`{"n":1,"z":"\u00e9"}`),
			PrevHash:      prev,
			EntryHash:     h,
			CreatedAt:     at.Add(time.Duration(idx) * time.Microsecond),
		}
		prev = h
	}
	return out
}

func testAuditAppendList(t *testing.T, s store.Store) {
	al := s.AuditLog()
	size, err := al.Size(ctx(t), "t")
	require.NoError(t, err)
	require.Zero(t, size)

	first := AuditChain("t", "p1", 0, "", 3)
	require.NoError(t, al.Append(ctx(t), first))
	second := AuditChain("t", "p2", 3, first[2].EntryHash, 2)
	second[1].ProposalID = "p1"
	second[1].Summary = nil // stored as {}
	require.NoError(t, al.Append(ctx(t), second))

	size, err = al.Size(ctx(t), "t")
	require.NoError(t, err)
	require.EqualValues(t, 5, size)

	all, err := al.List(ctx(t), "t", 0, 0)
	require.NoError(t, err)
	want := append(append([]*store.AuditEntry{}, first...), second...)
	want[4] = func() *store.AuditEntry { e := *want[4]; e.Summary = []byte("{}"); return &e }()
	require.Equal(t, want, all, "round trip, in index order, byte-for-byte summaries")
	require.Nil(t, second[1].Summary, "inputs are not modified")

	page, err := al.List(ctx(t), "t", 2, 2)
	require.NoError(t, err)
	require.Equal(t, want[2:4], page)

	got, err := al.Get(ctx(t), "t", 3)
	require.NoError(t, err)
	require.Equal(t, want[3], got)
	_, err = al.Get(ctx(t), "t", 5)
	require.ErrorIs(t, err, store.ErrNotFound)

	p1, err := al.ListByProposal(ctx(t), "t", "p1", 0)
	require.NoError(t, err)
	require.Equal(t, []*store.AuditEntry{want[0], want[1], want[2], want[4]}, p1)
	none, err := al.ListByProposal(ctx(t), "t", "nope", 0)
	require.NoError(t, err)
	require.NotNil(t, none)
	require.Empty(t, none)

	found, err := al.FindByHash(ctx(t), "t", want[1].EntryHash)
	require.NoError(t, err)
	require.Equal(t, want[1], found)
	_, err = al.FindByHash(ctx(t), "t", canonical.SHA256Hex([]byte("x")))
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testAuditAppendContinuity(t *testing.T, s store.Store) {
	al := s.AuditLog()
	head := AuditChain("t", "p", 0, "", 2)
	require.ErrorIs(t, al.Append(ctx(t), head[1:]), store.ErrConflict, "an empty log starts at 0")
	require.NoError(t, al.Append(ctx(t), head))

	for name, batch := range map[string][]*store.AuditEntry{
		"replays an index":    AuditChain("t", "p", 1, head[0].EntryHash, 2),
		"skips an index":      AuditChain("t", "p", 3, head[1].EntryHash, 1),
		"wrong previous hash": AuditChain("t", "p", 2, head[0].EntryHash, 1),
	} {
		require.ErrorIs(t, al.Append(ctx(t), batch), store.ErrConflict, name)
	}
	// A batch is all or nothing: a good first entry is not kept when its tenant's
	// second run does not continue, nor another tenant's entries.
	good := AuditChain("t", "p", 2, head[1].EntryHash, 1)
	other := AuditChain("u", "p", 0, "", 1)
	bad := AuditChain("v", "p", 1, canonical.SHA256Hex([]byte("x")), 1)
	require.ErrorIs(t, al.Append(ctx(t), append(append(good, other...), bad...)), store.ErrConflict)
	for tenant, want := range map[string]int64{"t": 2, "u": 0, "v": 0} {
		n, err := al.Size(ctx(t), tenant)
		require.NoError(t, err)
		require.Equal(t, want, n, tenant)
	}
	require.NoError(t, al.Append(ctx(t), append(good, other...)), "several tenants in one batch")
	require.NoError(t, al.Append(ctx(t), nil), "nothing to do")
}

func testAuditAppendInvalid(t *testing.T, s store.Store) {
	al := s.AuditLog()
	for name, mutate := range map[string]func(e []*store.AuditEntry){
		"no tenant":         func(e []*store.AuditEntry) { e[0].TenantID = "" },
		"no proposal":       func(e []*store.AuditEntry) { e[0].ProposalID = "" },
		"no event":          func(e []*store.AuditEntry) { e[0].Event = "" },
		"NUL in actor":      func(e []*store.AuditEntry) { e[0].Actor = "a\x00b" },
		"bad payload hash":  func(e []*store.AuditEntry) { e[0].PayloadSHA256 = "ABC" },
		"bad entry hash":    func(e []*store.AuditEntry) { e[0].EntryHash = "" },
		"genesis with prev": func(e []*store.AuditEntry) { e[0].PrevHash = e[0].EntryHash },
		"missing prev":      func(e []*store.AuditEntry) { e[1].PrevHash = "" },
		"negative index":    func(e []*store.AuditEntry) { e[0].Index = -1 },
		"summary not JSON":  func(e []*store.AuditEntry) { e[0].Summary = []byte("nope") },
		"summary an array":  func(e []*store.AuditEntry) { e[0].Summary = []byte("[1]") },
		"no time":           func(e []*store.AuditEntry) { e[0].CreatedAt = time.Time{} },
		"nanosecond time":   func(e []*store.AuditEntry) { e[0].CreatedAt = e[0].CreatedAt.Add(1) },
		"nil entry":         func(e []*store.AuditEntry) { e[1] = nil },
		"unchained batch":   func(e []*store.AuditEntry) { e[1].PrevHash = e[0].PayloadSHA256 },
	} {
		batch := AuditChain("t", "p", 0, "", 2)
		mutate(batch)
		require.ErrorIs(t, al.Append(ctx(t), batch), store.ErrInvalid, name)
	}
	n, err := al.Size(ctx(t), "t")
	require.NoError(t, err)
	require.Zero(t, n)
}

func testAuditIdempotencyKey(t *testing.T, s store.Store) {
	al := s.AuditLog()
	e := AuditChain("t", "p", 0, "", 3)
	e[1].IdempotencyKey = "snapshot:p:pre"
	require.NoError(t, al.Append(ctx(t), e[:2]))
	got, err := al.GetByIdempotencyKey(ctx(t), "t", "snapshot:p:pre")
	require.NoError(t, err)
	require.Equal(t, e[1], got)
	_, err = al.GetByIdempotencyKey(ctx(t), "t", "")
	require.ErrorIs(t, err, store.ErrNotFound, "the empty key names nothing")
	_, err = al.GetByIdempotencyKey(ctx(t), "u", "snapshot:p:pre")
	require.ErrorIs(t, err, store.ErrNotFound, "keys are per tenant")

	e[2].IdempotencyKey = "snapshot:p:pre"
	require.ErrorIs(t, al.Append(ctx(t), e[2:]), store.ErrConflict, "one entry per key")
	dup := AuditChain("u", "p", 0, "", 2)
	dup[0].IdempotencyKey, dup[1].IdempotencyKey = "k", "k"
	require.ErrorIs(t, al.Append(ctx(t), dup), store.ErrConflict, "one entry per key within a batch")
	e[2].IdempotencyKey = ""
	require.NoError(t, al.Append(ctx(t), e[2:]))
}

func testAuditTenantIsolation(t *testing.T, s store.Store) {
	al := s.AuditLog()
	require.NoError(t, al.Append(ctx(t), AuditChain("tenant-a", "p", 0, "", 2)))
	b := AuditChain("tenant-b", "p", 0, "", 1)
	require.NoError(t, al.Append(ctx(t), b), "each tenant has its own log from index 0")

	got, err := al.ListByProposal(ctx(t), "tenant-b", "p", 0)
	require.NoError(t, err)
	require.Equal(t, b, got)
	_, err = al.Get(ctx(t), "tenant-b", 1)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = al.FindByHash(ctx(t), "tenant-b", AuditChain("tenant-a", "p", 0, "", 1)[0].EntryHash)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// Writers racing on one log: each retries on ErrConflict from the head it
// reads; the log ends gapless and chained, with every entry appended once.
func testAuditConcurrentAppends(t *testing.T, s store.Store) {
	al := s.AuditLog()
	const writers, each = 4, 5
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; {
				size, err := al.Size(ctx(t), "t")
				if err != nil {
					errs[w] = err
					return
				}
				prev := ""
				if size > 0 {
					last, err := al.Get(ctx(t), "t", size-1)
					if err != nil {
						errs[w] = err
						return
					}
					prev = last.EntryHash
				}
				batch := AuditChain("t", fmt.Sprintf("w%d", w), size, prev, 1)
				err = al.Append(ctx(t), batch)
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					errs[w] = err
					return
				}
				i++
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	all, err := al.List(ctx(t), "t", 0, 0)
	require.NoError(t, err)
	require.Len(t, all, writers*each)
	for i, e := range all {
		require.EqualValues(t, i, e.Index)
		if i > 0 {
			require.Equal(t, all[i-1].EntryHash, e.PrevHash)
		}
	}
}

func testAuditInTx(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	err := s.InTx(ctx(t), func(tx store.Store) error {
		require.NoError(t, tx.AuditLog().Append(ctx(t), AuditChain("t", "p", 0, "", 2)))
		n, err := tx.AuditLog().Size(ctx(t), "t")
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "own writes are visible inside the tx")
		return boom
	})
	require.ErrorIs(t, err, boom)
	n, err := s.AuditLog().Size(ctx(t), "t")
	require.NoError(t, err)
	require.Zero(t, n, "rolled back")

	// A conflict inside a transaction (nested, so the tx stays usable).
	require.NoError(t, s.InTx(ctx(t), func(tx store.Store) error {
		require.ErrorIs(t, tx.AuditLog().Append(ctx(t), AuditChain("t", "p", 1, canonical.SHA256Hex(nil), 1)), store.ErrConflict)
		return tx.AuditLog().Append(ctx(t), AuditChain("t", "p", 0, "", 1))
	}))
	n, err = s.AuditLog().Size(ctx(t), "t")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func newCheckpoint(tenant string, size int64) *store.AuditCheckpoint {
	return &store.AuditCheckpoint{
		TenantID:       tenant,
		Size:           size,
		RootHash:       canonical.SHA256Hex(fmt.Appendf(nil, "root %d", size)),
		Note:           fmt.Sprintf("decision-fabric/audit/%s\n%d\nAAAA\n\n— decision-fabric/audit sig\n", tenant, size),
		MLDSASignature: "c2ln",
		MLDSAKeyID:     "k1",
	}
}

func testAuditCheckpoints(t *testing.T, s store.Store) {
	al := s.AuditLog()
	_, err := al.LatestCheckpoint(ctx(t), "t")
	require.ErrorIs(t, err, store.ErrNotFound)

	c5 := newCheckpoint("t", 5)
	c5.CreatedAt = time.Date(2025, 6, 1, 12, 0, 0, 999999999, time.UTC)
	got5, err := al.PutCheckpoint(ctx(t), c5)
	require.NoError(t, err)
	require.Equal(t, time.Date(2025, 6, 1, 12, 0, 0, 999999000, time.UTC), got5.CreatedAt)
	require.Equal(t, 999999999, c5.CreatedAt.Nanosecond(), "input not modified")
	got2, err := al.PutCheckpoint(ctx(t), newCheckpoint("t", 2))
	require.NoError(t, err)
	require.False(t, got2.CreatedAt.IsZero(), "store clock")
	_, err = al.PutCheckpoint(ctx(t), newCheckpoint("t", 5))
	require.ErrorIs(t, err, store.ErrConflict, "one checkpoint per size")
	_, err = al.PutCheckpoint(ctx(t), newCheckpoint("u", 9))
	require.NoError(t, err)

	latest, err := al.LatestCheckpoint(ctx(t), "t")
	require.NoError(t, err)
	require.Equal(t, got5, latest)
	list, err := al.ListCheckpoints(ctx(t), "t")
	require.NoError(t, err)
	require.Equal(t, []*store.AuditCheckpoint{got2, got5}, list)
	empty, err := al.ListCheckpoints(ctx(t), "nobody")
	require.NoError(t, err)
	require.Empty(t, empty)

	for name, mutate := range map[string]func(c *store.AuditCheckpoint){
		"size 0":     func(c *store.AuditCheckpoint) { c.Size = 0 },
		"bad root":   func(c *store.AuditCheckpoint) { c.RootHash = "x" },
		"no note":    func(c *store.AuditCheckpoint) { c.Note = "" },
		"no ML-DSA":  func(c *store.AuditCheckpoint) { c.MLDSASignature = "" },
		"no key id":  func(c *store.AuditCheckpoint) { c.MLDSAKeyID = "" },
		"no tenant":  func(c *store.AuditCheckpoint) { c.TenantID = "" },
		"nil record": nil,
	} {
		var c *store.AuditCheckpoint
		if mutate != nil {
			c = newCheckpoint("t", 7)
			mutate(c)
		}
		_, err := al.PutCheckpoint(ctx(t), c)
		require.ErrorIs(t, err, store.ErrInvalid, name)
	}
}

func testAuditListTenants(t *testing.T, s store.Store) {
	al := s.AuditLog()
	for _, tenant := range []string{"c", "a", "b"} {
		require.NoError(t, al.Append(ctx(t), AuditChain(tenant, "p", 0, "", 1)))
	}
	_, err := al.PutCheckpoint(ctx(t), newCheckpoint("d", 1)) // a checkpoint without entries (entries removed?) still counts
	require.NoError(t, err)
	_, err = al.PutCheckpoint(ctx(t), newCheckpoint("a", 1))
	require.NoError(t, err)
	got, err := al.ListTenants(ctx(t), "", 0)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c", "d"}, got)
	got, err = al.ListTenants(ctx(t), "a", 2)
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c"}, got)
}
