package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// negotiationTests are the NegotiationStore conformance subtests; Run runs them.
var negotiationTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"NegotiationRoundTrip", testNegotiationRoundTrip},
	{"NegotiationInvalid", testNegotiationInvalid},
	{"NegotiationOnePerProposal", testNegotiationOnePerProposal},
	{"NegotiationEndRound", testNegotiationEndRound},
	{"NegotiationTenantIsolation", testNegotiationTenantIsolation},
	{"NegotiationUpdate", testNegotiationUpdate},
	{"NegotiationUpdateGuards", testNegotiationUpdateGuards},
	{"NegotiationUpdateConcurrent", testNegotiationUpdateConcurrent},
	{"NegotiationListRunning", testNegotiationListRunning},
	{"NegotiationListByProposal", testNegotiationListByProposal},
	{"NegotiationVotes", testNegotiationVotes},
	{"NegotiationVoteGuards", testNegotiationVoteGuards},
	{"NegotiationVoteInvalid", testNegotiationVoteInvalid},
	{"NegotiationInTx", testNegotiationInTx},
}

// NewNegotiation returns a valid RUNNING negotiation of tenant with a fresh ID,
// a fresh proposal id and every field set.
func NewNegotiation(tenant string) *store.Negotiation {
	offer := []byte(`{"action":"scale","parameters":{"replicas":12},"target":"serviceX"}`)
	return &store.Negotiation{
		ID:             NewID(),
		TenantID:       tenant,
		ProposalID:     NewID(),
		ProposalDigest: canonical.SHA256Hex(offer),
		State:          store.NegotiationRunning,
		QuorumRule:     "MAJORITY",
		Round:          1,
		MaxRounds:      5,
		Offer:          offer,
		Regions: []store.NegotiationRegion{
			{Region: "eu-west", Weight: 3, KeyID: "k1", PublicKey: "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"},
			{Region: "us-east", Weight: 1, KeyID: "k2", PublicKey: "pk2"},
		},
		Deadline: time.Date(2030, 1, 2, 3, 4, 5, 6789, time.UTC),
	}
}

// NewVote returns a valid ACCEPT vote of region in n's current round.
func NewVote(n *store.Negotiation, region string) *store.NegotiationVote {
	return &store.NegotiationVote{NegotiationID: n.ID, TenantID: n.TenantID, Round: n.Round, Region: region,
		Verdict: store.VerdictAccept, Reason: "fits", Signature: "c2ln", KeyID: "k-" + region}
}

func mustCreateNegotiation(t *testing.T, s store.Store, n *store.Negotiation) *store.Negotiation {
	t.Helper()
	got, err := s.Negotiations().Create(ctx(t), n)
	require.NoError(t, err)
	return got
}

func testNegotiationRoundTrip(t *testing.T, s store.Store) {
	in := NewNegotiation("tenant-a")
	in.CreatedAt = time.Date(2025, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	orig := *in
	stored := mustCreateNegotiation(t, s, in)
	require.Equal(t, orig, *in, "Create must not modify its input")

	want := orig
	want.Version = 1
	want.CreatedAt = time.Date(2025, 5, 6, 6, 8, 9, 123456000, time.UTC)
	want.UpdatedAt = want.CreatedAt
	want.Deadline = time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	require.Equal(t, &want, stored)

	got, err := s.Negotiations().Get(ctx(t), "tenant-a", in.ID)
	require.NoError(t, err)
	require.Equal(t, stored, got)
	require.Nil(t, got.FinalManifest)

	_, err = s.Negotiations().Create(ctx(t), in)
	require.ErrorIs(t, err, store.ErrConflict, "duplicate id")
}

func testNegotiationInvalid(t *testing.T, s store.Store) {
	for name, mutate := range map[string]func(n *store.Negotiation){
		"bad ID":            func(n *store.Negotiation) { n.ID = "n1" },
		"no tenant":         func(n *store.Negotiation) { n.TenantID = "" },
		"no proposal":       func(n *store.Negotiation) { n.ProposalID = "" },
		"bad digest":        func(n *store.Negotiation) { n.ProposalDigest = "ABC" },
		"not running":       func(n *store.Negotiation) { n.State = store.NegotiationExpired },
		"no rule":           func(n *store.Negotiation) { n.QuorumRule = "" },
		"round 0":           func(n *store.Negotiation) { n.Round = 0 },
		"round past max":    func(n *store.Negotiation) { n.Round = 6 },
		"offer not JSON":    func(n *store.Negotiation) { n.Offer = []byte("{") },
		"final on running":  func(n *store.Negotiation) { n.FinalManifest = []byte(`{}`) },
		"no deadline":       func(n *store.Negotiation) { n.Deadline = time.Time{} },
		"no regions":        func(n *store.Negotiation) { n.Regions = nil },
		"duplicate region":  func(n *store.Negotiation) { n.Regions[1].Region = n.Regions[0].Region },
		"zero weight":       func(n *store.Negotiation) { n.Regions[0].Weight = 0 },
		"empty region name": func(n *store.Negotiation) { n.Regions[0].Region = "" },
		"NUL in reason":     func(n *store.Negotiation) { n.Reason = "a\x00b" },
	} {
		n := NewNegotiation("t")
		mutate(n)
		_, err := s.Negotiations().Create(ctx(t), n)
		require.ErrorIs(t, err, store.ErrInvalid, name)
	}
}

func testNegotiationOnePerProposal(t *testing.T, s store.Store) {
	first := mustCreateNegotiation(t, s, NewNegotiation("t"))
	again := NewNegotiation("t")
	again.ProposalID = first.ProposalID
	_, err := s.Negotiations().Create(ctx(t), again)
	require.ErrorIs(t, err, store.ErrConflict, "a proposal has one negotiation")

	other := NewNegotiation("t2")
	other.ProposalID = first.ProposalID
	mustCreateNegotiation(t, s, other) // another tenant's proposal of the same id is unrelated

	ended := *first
	ended.State, ended.Reason = store.NegotiationRejected, "no quorum"
	_, err = s.Negotiations().Update(ctx(t), &ended, first.Version)
	require.NoError(t, err)
	_, err = s.Negotiations().Create(ctx(t), again)
	require.ErrorIs(t, err, store.ErrConflict, "an ended negotiation is not started again: the proposal keeps it")
}

func testNegotiationEndRound(t *testing.T, s store.Store) {
	n := NewNegotiation("t")
	n.MaxRounds = 3
	n = mustCreateNegotiation(t, s, n)
	votes := []*store.NegotiationVote{NewVote(n, n.Regions[0].Region), NewVote(n, n.Regions[1].Region)}

	// The next round, with its votes, in one write.
	next := *n
	next.Round = 2
	stored, err := s.Negotiations().EndRound(ctx(t), &next, n.Version, votes)
	require.NoError(t, err)
	require.Equal(t, int32(2), stored.Round)
	require.Equal(t, n.Version+1, stored.Version)
	got, err := s.Negotiations().ListVotes(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, int32(1), got[0].Round)

	// A stale version writes nothing: neither the votes nor the outcome.
	late := []*store.NegotiationVote{NewVote(stored, n.Regions[0].Region)}
	late[0].Round = 2
	end := *stored
	end.State, end.Reason = store.NegotiationRejected, "no"
	_, err = s.Negotiations().EndRound(ctx(t), &end, n.Version, late)
	require.ErrorIs(t, err, store.ErrConflict)
	got, err = s.Negotiations().ListVotes(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Len(t, got, 2, "a refused EndRound stores no vote")

	// A vote of another round is invalid.
	wrong := []*store.NegotiationVote{NewVote(stored, n.Regions[1].Region)}
	wrong[0].Round = 1
	_, err = s.Negotiations().EndRound(ctx(t), &end, stored.Version, wrong)
	require.ErrorIs(t, err, store.ErrInvalid)

	// The outcome and the final round's votes together.
	final, err := s.Negotiations().EndRound(ctx(t), &end, stored.Version, late)
	require.NoError(t, err)
	require.Equal(t, store.NegotiationRejected, final.State)
	got, err = s.Negotiations().ListVotes(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Len(t, got, 3)

	// Another tenant's negotiation is not found.
	_, err = s.Negotiations().EndRound(ctx(t), &store.Negotiation{ID: n.ID, TenantID: "t2", State: store.NegotiationRejected, Round: 2, Offer: n.Offer}, final.Version, nil)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testNegotiationTenantIsolation(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("tenant-a"))
	_, err := s.Negotiations().Get(ctx(t), "tenant-b", n.ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	upd := *n
	upd.TenantID = "tenant-b"
	upd.State, upd.Reason = store.NegotiationExpired, "x"
	_, err = s.Negotiations().Update(ctx(t), &upd, 1)
	require.ErrorIs(t, err, store.ErrNotFound)

	v := NewVote(n, "eu-west")
	v.TenantID = "tenant-b"
	_, err = s.Negotiations().AddVote(ctx(t), v)
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = s.Negotiations().AddVote(ctx(t), NewVote(n, "eu-west"))
	require.NoError(t, err)
	votes, err := s.Negotiations().ListVotes(ctx(t), "tenant-b", n.ID)
	require.NoError(t, err)
	require.Empty(t, votes)
	list, err := s.Negotiations().ListByProposal(ctx(t), "tenant-b", n.ProposalID, 0)
	require.NoError(t, err)
	require.Empty(t, list)

	got, err := s.Negotiations().Get(ctx(t), "tenant-a", n.ID)
	require.NoError(t, err)
	require.Equal(t, n, got, "nothing changed")
}

func testNegotiationUpdate(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("t"))

	next := *n
	next.Round = 2
	next.Offer = []byte(`{"action":"scale","parameters":{"replicas":10},"target":"serviceX"}`)
	orig := next
	r2, err := s.Negotiations().Update(ctx(t), &next, 1)
	require.NoError(t, err)
	require.Equal(t, orig, next, "Update must not modify its input")
	require.Equal(t, int64(2), r2.Version)
	require.Equal(t, int32(2), r2.Round)
	require.Equal(t, next.Offer, r2.Offer)
	require.Equal(t, store.NegotiationRunning, r2.State)
	require.False(t, r2.UpdatedAt.Before(n.UpdatedAt))
	require.Equal(t, n.CreatedAt, r2.CreatedAt)
	require.Equal(t, n.Regions, r2.Regions, "regions never change")

	done := *r2
	done.State, done.Reason, done.FinalManifest = store.NegotiationAgreed, "3 of 5 accepted", r2.Offer
	r3, err := s.Negotiations().Update(ctx(t), &done, 2)
	require.NoError(t, err)
	require.Equal(t, int64(3), r3.Version)
	require.Equal(t, store.NegotiationAgreed, r3.State)
	require.Equal(t, r2.Offer, r3.FinalManifest)
	require.Equal(t, "3 of 5 accepted", r3.Reason)

	got, err := s.Negotiations().Get(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Equal(t, r3, got)
}

func testNegotiationUpdateGuards(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("t"))
	upd := func(mutate func(u *store.Negotiation), version int64) error {
		u := *n
		mutate(&u)
		_, err := s.Negotiations().Update(ctx(t), &u, version)
		return err
	}
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.Round = 2 }, 7), store.ErrConflict, "stale version")
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.State = "DONE" }, 1), store.ErrInvalid)
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.State = store.NegotiationAgreed }, 1), store.ErrInvalid, "AGREED needs a final manifest")
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.FinalManifest = []byte(`{}`) }, 1), store.ErrInvalid, "only AGREED has a final manifest")
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.Offer = nil }, 1), store.ErrInvalid)
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.Round = 6 }, 1), store.ErrInvalid, "round past max_rounds")
	u := *n
	u.ID = NewID()
	_, err := s.Negotiations().Update(ctx(t), &u, 1)
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, upd(func(u *store.Negotiation) { u.Round = 3 }, 1))
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.Round = 2 }, 2), store.ErrConflict, "rounds never go back")
	require.NoError(t, upd(func(u *store.Negotiation) { u.Round, u.State, u.Reason = 3, store.NegotiationExpired, "deadline" }, 2))
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.Round = 3 }, 3), store.ErrConflict, "terminal states are final")
	require.ErrorIs(t, upd(func(u *store.Negotiation) { u.Round, u.State = 3, store.NegotiationRejected }, 3), store.ErrConflict)

	got, err := s.Negotiations().Get(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Equal(t, store.NegotiationExpired, got.State)
	require.Equal(t, "deadline", got.Reason)
}

// Of N concurrent Updates from one version exactly one wins.
func testNegotiationUpdateConcurrent(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("t"))
	const workers = 8
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			u := *n
			u.State, u.Reason = store.NegotiationExpired, fmt.Sprint("worker ", i)
			_, errs[i] = s.Negotiations().Update(ctx(t), &u, 1)
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else {
			require.ErrorIs(t, err, store.ErrConflict)
		}
	}
	require.Equal(t, 1, wins)
}

func testNegotiationListRunning(t *testing.T, s store.Store) {
	var running []string
	for _, tenant := range []string{"a", "b", "c", "a"} {
		running = append(running, mustCreateNegotiation(t, s, NewNegotiation(tenant)).ID)
	}
	ended := mustCreateNegotiation(t, s, NewNegotiation("a"))
	u := *ended
	u.State, u.Reason = store.NegotiationRejected, "no"
	_, err := s.Negotiations().Update(ctx(t), &u, 1)
	require.NoError(t, err)

	var got []string
	after := ""
	for {
		page, err := s.Negotiations().ListRunning(ctx(t), after, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 3)
		if len(page) == 0 {
			break
		}
		for _, n := range page {
			require.Equal(t, store.NegotiationRunning, n.State)
			got = append(got, n.ID)
		}
		after = page[len(page)-1].ID
	}
	require.Equal(t, running, got, "every tenant's RUNNING negotiations in id order (ULIDs made in order)")
}

func testNegotiationListByProposal(t *testing.T, s store.Store) {
	first := NewNegotiation("t")
	first.CreatedAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	first = mustCreateNegotiation(t, s, first)
	mustCreateNegotiation(t, s, NewNegotiation("t")) // another proposal

	got, err := s.Negotiations().ListByProposal(ctx(t), "t", first.ProposalID, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, first.ID, got[0].ID)

	none, err := s.Negotiations().ListByProposal(ctx(t), "t", NewID(), 0)
	require.NoError(t, err)
	require.NotNil(t, none)
	require.Empty(t, none)
}

func testNegotiationVotes(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("t"))

	counter := NewVote(n, "us-east")
	counter.Verdict, counter.Reason = store.VerdictCounter, "capacity 8"
	counter.Counter = []byte(`{"action":"scale","parameters":{"replicas":8},"target":"serviceX"}`)
	counter.CastAt = time.Date(2025, 1, 1, 0, 0, 1, 999, time.UTC)
	orig := *counter
	c1, err := s.Negotiations().AddVote(ctx(t), counter)
	require.NoError(t, err)
	require.Equal(t, orig, *counter, "AddVote must not modify its input")
	want := orig
	want.CastAt = time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC)
	require.Equal(t, &want, c1)

	accept := NewVote(n, "eu-west")
	accept.CastAt = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a1, err := s.Negotiations().AddVote(ctx(t), accept)
	require.NoError(t, err)
	require.Nil(t, a1.Counter)

	_, err = s.Negotiations().AddVote(ctx(t), NewVote(n, "eu-west"))
	require.ErrorIs(t, err, store.ErrConflict, "one vote per region and round")

	u := *n
	u.Round = 2
	n2, err := s.Negotiations().Update(ctx(t), &u, 1)
	require.NoError(t, err)
	abstain := NewVote(n2, "us-east")
	abstain.Verdict, abstain.CastAt = store.VerdictAbstain, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	a2, err := s.Negotiations().AddVote(ctx(t), abstain)
	require.NoError(t, err)
	noTime := NewVote(n2, "eu-west")
	before := time.Now().UTC().Truncate(time.Microsecond)
	r2, err := s.Negotiations().AddVote(ctx(t), noTime)
	require.NoError(t, err)
	require.False(t, r2.CastAt.Before(before), "CastAt defaults to the store clock")

	votes, err := s.Negotiations().ListVotes(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Equal(t, []*store.NegotiationVote{a1, c1, a2, r2}, votes, "ordered by round, then cast_at")

	none, err := s.Negotiations().ListVotes(ctx(t), "t", NewID())
	require.NoError(t, err)
	require.NotNil(t, none)
	require.Empty(t, none)
}

func testNegotiationVoteGuards(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("t"))
	late := NewVote(n, "eu-west")
	late.Round = 2
	_, err := s.Negotiations().AddVote(ctx(t), late)
	require.ErrorIs(t, err, store.ErrConflict, "not the current round")

	missing := NewVote(n, "eu-west")
	missing.NegotiationID = NewID()
	_, err = s.Negotiations().AddVote(ctx(t), missing)
	require.ErrorIs(t, err, store.ErrNotFound)

	u := *n
	u.State, u.Reason = store.NegotiationExpired, "deadline"
	_, err = s.Negotiations().Update(ctx(t), &u, 1)
	require.NoError(t, err)
	_, err = s.Negotiations().AddVote(ctx(t), NewVote(n, "eu-west"))
	require.ErrorIs(t, err, store.ErrConflict, "an ended negotiation takes no votes")

	votes, err := s.Negotiations().ListVotes(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Empty(t, votes)
}

func testNegotiationVoteInvalid(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("t"))
	for name, mutate := range map[string]func(v *store.NegotiationVote){
		"bad negotiation id":   func(v *store.NegotiationVote) { v.NegotiationID = "x" },
		"no tenant":            func(v *store.NegotiationVote) { v.TenantID = "" },
		"no region":            func(v *store.NegotiationVote) { v.Region = "" },
		"round 0":              func(v *store.NegotiationVote) { v.Round = 0 },
		"bad verdict":          func(v *store.NegotiationVote) { v.Verdict = "MAYBE" },
		"counter without body": func(v *store.NegotiationVote) { v.Verdict = store.VerdictCounter },
		"body without counter": func(v *store.NegotiationVote) { v.Counter = []byte(`{}`) },
		"counter not JSON":     func(v *store.NegotiationVote) { v.Verdict, v.Counter = store.VerdictCounter, []byte("{") },
		"no signature":         func(v *store.NegotiationVote) { v.Signature = "" },
		"no key id":            func(v *store.NegotiationVote) { v.KeyID = "" },
	} {
		v := NewVote(n, "eu-west")
		mutate(v)
		_, err := s.Negotiations().AddVote(ctx(t), v)
		require.ErrorIs(t, err, store.ErrInvalid, name)
	}
}

// A vote and the round transition it causes commit together or not at all.
func testNegotiationInTx(t *testing.T, s store.Store) {
	n := mustCreateNegotiation(t, s, NewNegotiation("t"))
	boom := fmt.Errorf("boom")
	err := s.InTx(ctx(t), func(tx store.Store) error {
		if _, err := tx.Negotiations().AddVote(ctx(t), NewVote(n, "eu-west")); err != nil {
			return err
		}
		u := *n
		u.State, u.FinalManifest, u.Reason = store.NegotiationAgreed, n.Offer, "ok"
		if _, err := tx.Negotiations().Update(ctx(t), &u, 1); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	got, err := s.Negotiations().Get(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Equal(t, n, got)
	votes, err := s.Negotiations().ListVotes(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Empty(t, votes)

	require.NoError(t, s.InTx(ctx(t), func(tx store.Store) error {
		if _, err := tx.Negotiations().AddVote(ctx(t), NewVote(n, "eu-west")); err != nil {
			return err
		}
		// A failing vote inside the tx (duplicate) is undone alone (nested savepoint).
		_, err := tx.Negotiations().AddVote(ctx(t), NewVote(n, "eu-west"))
		require.ErrorIs(t, err, store.ErrConflict)
		u := *n
		u.State, u.FinalManifest, u.Reason = store.NegotiationAgreed, n.Offer, "ok"
		_, err = tx.Negotiations().Update(ctx(t), &u, 1)
		return err
	}))
	got, err = s.Negotiations().Get(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Equal(t, store.NegotiationAgreed, got.State)
	votes, err = s.Negotiations().ListVotes(ctx(t), "t", n.ID)
	require.NoError(t, err)
	require.Len(t, votes, 1)
}
