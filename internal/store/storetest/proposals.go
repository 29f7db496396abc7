package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

func testProposalRoundTrip(t *testing.T, s store.Store) {
	in := NewProposal("tenant-a")
	in.IdempotencyKey = "key-1"
	// Sub-microsecond digits and a non-UTC zone must normalise identically on every backend.
	zone := time.FixedZone("X", 5*3600)
	in.CreatedAt = time.Date(2024, 2, 29, 23, 59, 58, 123456789, zone)
	in.UpdatedAt = in.CreatedAt.Add(1500 * time.Millisecond)
	orig := *in

	stored, created, err := s.Proposals().Create(ctx(t), in)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, orig, *in, "Create must not modify its input")

	want := orig
	want.Version = 1
	want.CreatedAt = time.Date(2024, 2, 29, 18, 59, 58, 123456000, time.UTC)
	want.UpdatedAt = time.Date(2024, 2, 29, 18, 59, 59, 623456000, time.UTC)
	require.Equal(t, &want, stored)

	got, err := s.Proposals().Get(ctx(t), "tenant-a", in.ID)
	require.NoError(t, err)
	require.Equal(t, stored, got)
	require.Equal(t, time.UTC, got.CreatedAt.Location())
}

func testProposalDefaults(t *testing.T, s store.Store) {
	id := NewID()
	manifest := []byte(`{}`)
	before := time.Now().UTC().Truncate(time.Microsecond)
	stored := mustCreate(t, s, &store.Proposal{ID: id, TenantID: "t", Status: "SUBMITTED", Manifest: manifest, Version: 42})
	after := time.Now().UTC()

	require.Equal(t, int64(1), stored.Version, "Version is 1 on create whatever the input")
	require.Equal(t, []byte("{}"), stored.Metadata)
	require.Equal(t, canonical.SHA256Hex(manifest), stored.ManifestSHA256, "ManifestSHA256 is computed when empty")
	require.False(t, stored.DryRun)
	require.Empty(t, stored.Impact)
	require.Empty(t, stored.IdempotencyKey)
	require.False(t, stored.CreatedAt.Before(before))
	require.False(t, stored.CreatedAt.After(after))
	require.Equal(t, stored.CreatedAt, stored.UpdatedAt)
	require.Equal(t, stored.CreatedAt, stored.CreatedAt.Truncate(time.Microsecond))

	got, err := s.Proposals().Get(ctx(t), "t", id)
	require.NoError(t, err)
	require.Equal(t, stored, got)
}

func testProposalInvalid(t *testing.T, s store.Store) {
	for name, mutate := range map[string]func(p *store.Proposal){
		"lower-case ULID":   func(p *store.Proposal) { p.ID = "01arz3ndektsv4rrffq69g5fav" },
		"not a ULID":        func(p *store.Proposal) { p.ID = "proposal-1" },
		"empty tenant":      func(p *store.Proposal) { p.TenantID = "" },
		"empty status":      func(p *store.Proposal) { p.Status = "" },
		"bad impact":        func(p *store.Proposal) { p.Impact = "critical" },
		"manifest not JSON": func(p *store.Proposal) { p.Manifest = []byte("{"); p.ManifestSHA256 = "" },
		"empty manifest":    func(p *store.Proposal) { p.Manifest = nil; p.ManifestSHA256 = "" },
		"hash mismatch":     func(p *store.Proposal) { p.ManifestSHA256 = canonical.SHA256Hex([]byte("other")) },
		"metadata array":    func(p *store.Proposal) { p.Metadata = []byte("[]") },
		"bad pre-state":     func(p *store.Proposal) { p.PreStateSHA256 = "ABC" },
		"bad fingerprint":   func(p *store.Proposal) { p.RequestSHA256 = "ABC" },
		"NUL in text":       func(p *store.Proposal) { p.CreatedBy = "a\x00b" },
	} {
		p := NewProposal("t")
		mutate(p)
		_, _, err := s.Proposals().Create(ctx(t), p)
		require.ErrorIs(t, err, store.ErrInvalid, name)
	}
	_, _, err := s.Proposals().Create(ctx(t), nil)
	require.ErrorIs(t, err, store.ErrInvalid)
	list, err := s.Proposals().List(ctx(t), "t", "", 0)
	require.NoError(t, err)
	require.Empty(t, list, "invalid proposals must not be stored")
}

func testProposalDuplicateID(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	dup := NewProposal("t")
	dup.ID = p.ID
	_, _, err := s.Proposals().Create(ctx(t), dup)
	require.ErrorIs(t, err, store.ErrConflict)
	dup.TenantID = "other"
	_, _, err = s.Proposals().Create(ctx(t), dup)
	require.ErrorIs(t, err, store.ErrConflict, "IDs are unique across tenants")
}

func testProposalTenantIsolation(t *testing.T, s store.Store) {
	a := mustCreate(t, s, NewProposal("tenant-a"))
	b := mustCreate(t, s, NewProposal("tenant-b"))

	_, err := s.Proposals().Get(ctx(t), "tenant-b", a.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.Proposals().Get(ctx(t), "tenant-a", NewID())
	require.ErrorIs(t, err, store.ErrNotFound)

	la, err := s.Proposals().List(ctx(t), "tenant-a", "", 0)
	require.NoError(t, err)
	require.Equal(t, []*store.Proposal{a}, la)
	lb, err := s.Proposals().List(ctx(t), "tenant-b", "", 0)
	require.NoError(t, err)
	require.Equal(t, []*store.Proposal{b}, lb)
	none, err := s.Proposals().List(ctx(t), "tenant-c", "", 0)
	require.NoError(t, err)
	require.Empty(t, none)

	_, err = s.Proposals().UpdateStatus(ctx(t), "tenant-b", a.ID, "SUBMITTED", "APPROVED", 1)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's proposal is not found")
	got, err := s.Proposals().Get(ctx(t), "tenant-a", a.ID)
	require.NoError(t, err)
	require.Equal(t, a, got)
}

func testProposalList(t *testing.T, s store.Store) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []*store.Proposal
	for i := range 5 {
		p := NewProposal("t")
		p.CreatedAt = base.Add(time.Duration(i) * time.Second)
		if i%2 == 1 {
			p.Status = "APPROVED"
		}
		all = append(all, mustCreate(t, s, p))
	}
	// Same timestamp: ties break on id, descending.
	tie := NewProposal("t")
	tie.CreatedAt = base.Add(4 * time.Second)
	tieStored := mustCreate(t, s, tie)
	newestFirst := []*store.Proposal{tieStored, all[4], all[3], all[2], all[1], all[0]}
	if tieStored.ID < all[4].ID {
		newestFirst[0], newestFirst[1] = all[4], tieStored
	}

	got, err := s.Proposals().List(ctx(t), "t", "", 0)
	require.NoError(t, err)
	require.Equal(t, newestFirst, got)

	got, err = s.Proposals().List(ctx(t), "t", "", 2)
	require.NoError(t, err)
	require.Equal(t, newestFirst[:2], got)

	got, err = s.Proposals().List(ctx(t), "t", "APPROVED", -1)
	require.NoError(t, err)
	require.Equal(t, []*store.Proposal{all[3], all[1]}, got)

	got, err = s.Proposals().List(ctx(t), "t", "NO_SUCH_STATUS", 10)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Empty(t, got)
}

func testProposalIdempotency(t *testing.T, s store.Store) {
	first := NewProposal("tenant-a")
	first.IdempotencyKey = "retry-me"
	first.RequestSHA256 = canonical.SHA256Hex([]byte("the first request"))
	stored := mustCreate(t, s, first)
	require.Equal(t, first.RequestSHA256, stored.RequestSHA256, "the fingerprint is kept beside the key")
	byKey, err := s.Proposals().GetByIdempotencyKey(ctx(t), "tenant-a", "retry-me")
	require.NoError(t, err)
	require.Equal(t, stored, byKey)
	_, err = s.Proposals().GetByIdempotencyKey(ctx(t), "tenant-b", "retry-me")
	require.ErrorIs(t, err, store.ErrNotFound, "keys are per tenant")
	_, err = s.Proposals().GetByIdempotencyKey(ctx(t), "tenant-a", "")
	require.ErrorIs(t, err, store.ErrNotFound)

	retry := NewProposal("tenant-a") // new ID and payload, same key
	retry.IdempotencyKey = "retry-me"
	again, created, err := s.Proposals().Create(ctx(t), retry)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, stored, again, "the existing proposal is returned unchanged")
	_, err = s.Proposals().Get(ctx(t), "tenant-a", retry.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the retry's own ID was not stored")

	other := NewProposal("tenant-b")
	other.IdempotencyKey = "retry-me"
	otherStored, created, err := s.Proposals().Create(ctx(t), other)
	require.NoError(t, err)
	require.True(t, created, "keys are per tenant")
	require.Equal(t, other.ID, otherStored.ID)

	// No key: never deduplicated.
	mustCreate(t, s, NewProposal("tenant-a"))
	mustCreate(t, s, NewProposal("tenant-a"))
	list, err := s.Proposals().List(ctx(t), "tenant-a", "", 0)
	require.NoError(t, err)
	require.Len(t, list, 3)
}

func testProposalIdempotencyConcurrent(t *testing.T, s store.Store) {
	const n = 8
	type result struct {
		p       *store.Proposal
		created bool
		err     error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for range n {
		p := NewProposal("t")
		p.IdempotencyKey = "same-key"
		go func() {
			<-start
			got, created, err := s.Proposals().Create(ctx(t), p)
			results <- result{got, created, err}
		}()
	}
	close(start)
	var ids = map[string]bool{}
	createdCount := 0
	for range n {
		r := <-results
		require.NoError(t, r.err)
		ids[r.p.ID] = true
		if r.created {
			createdCount++
		}
	}
	require.Equal(t, 1, createdCount, "exactly one Create wins")
	require.Len(t, ids, 1, "every caller sees the same proposal")
	list, err := s.Proposals().List(ctx(t), "t", "", 0)
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func testProposalConcurrentWriters(t *testing.T, s store.Store) {
	const writers, each = 8, 20
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for range each {
				p := NewProposal("t")
				if _, _, err := s.Proposals().Create(ctx(t), p); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				if _, err := s.Proposals().List(ctx(t), "t", "", 5); err != nil {
					errs <- fmt.Errorf("reader %d: %w", w, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	list, err := s.Proposals().List(ctx(t), "t", "", store.MaxListLimit)
	require.NoError(t, err)
	require.Len(t, list, writers*each)
}

func testUpdateStatus(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	before := time.Now().UTC().Truncate(time.Microsecond)
	up, err := s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "SUBMITTED", "APPROVED", 1)
	require.NoError(t, err)

	want := *p
	want.Status, want.Version, want.UpdatedAt = "APPROVED", 2, up.UpdatedAt
	require.Equal(t, &want, up)
	require.False(t, up.UpdatedAt.Before(before))

	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, up, got)

	up2, err := s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "APPROVED", "EXECUTED", 2)
	require.NoError(t, err)
	require.Equal(t, int64(3), up2.Version)
	require.Equal(t, "EXECUTED", up2.Status)
}

func testUpdateStatusWrongFrom(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	_, err := s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "APPROVED", "EXECUTED", 1)
	require.ErrorIs(t, err, store.ErrConflict)
	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, p, got, "row unchanged")

	_, err = s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "SUBMITTED", "", 1)
	require.ErrorIs(t, err, store.ErrInvalid, "empty target status")
}

func testUpdateStatusStaleVersion(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	up, err := s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "SUBMITTED", "SUBMITTED", 1)
	require.NoError(t, err, "a same-status update still bumps the version")
	require.Equal(t, int64(2), up.Version)

	_, err = s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "SUBMITTED", "APPROVED", 1)
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "SUBMITTED", "APPROVED", 3)
	require.ErrorIs(t, err, store.ErrConflict)
	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, up, got, "row unchanged")
}

func testUpdateStatusNotFound(t *testing.T, s store.Store) {
	_, err := s.Proposals().UpdateStatus(ctx(t), "t", NewID(), "SUBMITTED", "APPROVED", 1)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NotErrorIs(t, err, store.ErrConflict)
}

func testUpdateStatusConcurrent(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := s.Proposals().UpdateStatus(ctx(t), "t", p.ID, "SUBMITTED", "APPROVED", 1)
			errs <- err
		}()
	}
	wins := 0
	for range n {
		if err := <-errs; err == nil {
			wins++
		} else {
			require.ErrorIs(t, err, store.ErrConflict)
		}
	}
	require.Equal(t, 1, wins, "exactly one guarded transition succeeds")
	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Version)
}

func testAdvance(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	require.JSONEq(t, `{}`, string(p.Decision), "a new proposal has an empty decision record")
	post := canonical.SHA256Hex([]byte("post"))
	up, err := s.Proposals().Advance(ctx(t), "t", p.ID, "SUBMITTED", 1, store.ProposalChange{
		Status: "ENACTED", DryRun: true, Decision: []byte(`{"score":{"confidence":0.8}}`), PostStateSHA256: post,
	})
	require.NoError(t, err)
	require.Equal(t, "ENACTED", up.Status)
	require.True(t, up.DryRun)
	require.Equal(t, `{"score":{"confidence":0.8}}`, string(up.Decision), "stored byte for byte")
	require.Equal(t, post, up.PostStateSHA256)
	require.Equal(t, int64(2), up.Version)
	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, up, got)

	_, err = s.Proposals().Advance(ctx(t), "t", p.ID, "SUBMITTED", 2, store.ProposalChange{Status: "X"})
	require.ErrorIs(t, err, store.ErrConflict, "wrong from-status")
	_, err = s.Proposals().Advance(ctx(t), "t", p.ID, "ENACTED", 1, store.ProposalChange{Status: "X"})
	require.ErrorIs(t, err, store.ErrConflict, "stale version")
	_, err = s.Proposals().Advance(ctx(t), "other", p.ID, "ENACTED", 2, store.ProposalChange{Status: "X"})
	require.ErrorIs(t, err, store.ErrNotFound, "other tenant")
	_, err = s.Proposals().Advance(ctx(t), "t", p.ID, "ENACTED", 2, store.ProposalChange{Status: "X", Decision: []byte(`{`)})
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = s.Proposals().Advance(ctx(t), "t", p.ID, "ENACTED", 2, store.ProposalChange{Status: "X", PostStateSHA256: "not-a-hash"})
	require.ErrorIs(t, err, store.ErrInvalid, "a malformed post-state hash, as Create refuses it")
	got, err = s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, up, got, "failed advances change nothing")
}

func testAdvanceConsensusBundle(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	require.Empty(t, p.ConsensusBundle, "no bundle before the regions agree")
	// Stored and returned byte for byte (member order and spacing kept): the bundle's
	// signature covers exact bytes.
	cb := []byte(`{"bundle":{"z":1,"a":"x"},  "sha256":"00"}`)
	up, err := s.Proposals().Advance(ctx(t), "t", p.ID, "SUBMITTED", 1, store.ProposalChange{Status: "AGREED", ConsensusBundle: cb})
	require.NoError(t, err)
	require.Equal(t, string(cb), string(up.ConsensusBundle))
	up, err = s.Proposals().Advance(ctx(t), "t", p.ID, "AGREED", 2, store.ProposalChange{Status: "SCORED", Decision: []byte(`{"reason":"r"}`)})
	require.NoError(t, err)
	require.Equal(t, string(cb), string(up.ConsensusBundle), "a change without a bundle keeps it")
	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, string(cb), string(got.ConsensusBundle))
	for _, bad := range []string{`{`, `[1]`, `"s"`} {
		_, err = s.Proposals().Advance(ctx(t), "t", p.ID, "SCORED", 3, store.ProposalChange{Status: "X", ConsensusBundle: []byte(bad)})
		require.ErrorIs(t, err, store.ErrInvalid, bad)
	}
	got, err = s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, up, got, "refused changes change nothing")
}

func testAdvanceImpact(t *testing.T, s store.Store) {
	p := mustCreate(t, s, NewProposal("t"))
	up, err := s.Proposals().Advance(ctx(t), "t", p.ID, p.Status, 1, store.ProposalChange{Status: "AGREED", Impact: "high"})
	require.NoError(t, err)
	require.Equal(t, "high", up.Impact)
	up, err = s.Proposals().Advance(ctx(t), "t", p.ID, "AGREED", 2, store.ProposalChange{Status: "SCORED"})
	require.NoError(t, err)
	require.Equal(t, "high", up.Impact, "a change without an impact keeps it")
	_, err = s.Proposals().Advance(ctx(t), "t", p.ID, "SCORED", 3, store.ProposalChange{Status: "X", Impact: "huge"})
	require.ErrorIs(t, err, store.ErrInvalid)
	got, err := s.Proposals().Get(ctx(t), "t", p.ID)
	require.NoError(t, err)
	require.Equal(t, up, got)
}

func testProposalHistory(t *testing.T, s store.Store) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	add := func(tenant, status, manifest string) *store.Proposal {
		n++
		p := NewProposal(tenant)
		p.Status, p.Manifest, p.ManifestSHA256 = status, []byte(manifest), ""
		p.CreatedAt = base.Add(time.Duration(n) * time.Second)
		return mustCreate(t, s, p)
	}
	scaleX := `{"action":"scale","target":"svc-x","parameters":{"replicas":3}}`
	scaleY := `{"action":"scale","target":"svc-y"}`
	first := add("t1", "ENACTED", scaleX)
	require.Equal(t, "scale", first.Action, "Action comes from the manifest")
	require.Equal(t, "svc-x", first.Target, "Target comes from the manifest")
	add("t1", "ENACTED", scaleX)
	add("t1", "ROLLED_BACK", scaleX)
	add("t1", "SUBMITTED", scaleX) // not a finished status: not counted
	add("t1", "ENACTED", scaleY)
	add("t1", "DRY_RUN_FAILED", scaleY)
	add("t1", "ENACTED", `{"action":"restart","target":"svc-x"}`)
	add("t2", "ENACTED", scaleX) // another tenant: never counted
	odd := add("t1", "ENACTED", `{"action":7,"target":["x"]}`)
	require.Empty(t, odd.Action, "a non-string action is not indexed")
	require.Empty(t, odd.Target)

	finished := []string{"ENACTED", "ROLLED_BACK", "DRY_RUN_FAILED"}
	h := s.Proposals().History
	got, err := h(ctx(t), "t1", "scale", "svc-x", finished, 0)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"ENACTED": 2, "ROLLED_BACK": 1}, got)

	got, err = h(ctx(t), "t1", "scale", "", finished, 0)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"ENACTED": 3, "ROLLED_BACK": 1, "DRY_RUN_FAILED": 1}, got)

	// limit applies per status: at most one of each.
	got, err = h(ctx(t), "t1", "scale", "", finished, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"ENACTED": 1, "ROLLED_BACK": 1, "DRY_RUN_FAILED": 1}, got)

	got, err = h(ctx(t), "t3", "scale", "", finished, 0)
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = h(ctx(t), "t1", "scale", "", nil, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}

func testProposalListCreated(t *testing.T, s store.Store) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var all []*store.Proposal
	for i := range 5 {
		p := NewProposal("t")
		p.CreatedAt = base.Add(time.Duration(i) * time.Second)
		all = append(all, mustCreate(t, s, p))
	}
	other := NewProposal("u")
	other.CreatedAt = base.Add(2 * time.Second)
	mustCreate(t, s, other)

	// [from, to): from included, to excluded, oldest first, the tenant's only.
	got, err := s.Proposals().ListCreated(ctx(t), "t", base.Add(time.Second), base.Add(4*time.Second), 0)
	require.NoError(t, err)
	require.Equal(t, all[1:4], got)

	got, err = s.Proposals().ListCreated(ctx(t), "t", base, base.Add(time.Hour), 2)
	require.NoError(t, err)
	require.Equal(t, all[:2], got)

	got, err = s.Proposals().ListCreated(ctx(t), "u", base, base.Add(2*time.Second), 10)
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Empty(t, got, "to is excluded")
}
