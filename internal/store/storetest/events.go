package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// eventOutboxTests are the EventOutboxStore conformance subtests; Run runs them.
var eventOutboxTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"EventOutboxAdd", testEventOutboxAdd},
	{"EventOutboxOrderPerProposal", testEventOutboxOrderPerProposal},
	{"EventOutboxLease", testEventOutboxLease},
	{"EventOutboxInTx", testEventOutboxInTx},
	{"EventOutboxClaimConcurrent", testEventOutboxClaimConcurrent},
}

func newEvent(tenant, proposal string, version int) *store.LifecycleEvent {
	return &store.LifecycleEvent{EventID: fmt.Sprintf("%s:%d", proposal, version), TenantID: tenant, ProposalID: proposal,
		Payload: []byte{0x0a, 0x01, byte(version)}}
}

func addEvents(t *testing.T, s store.Store, evs ...*store.LifecycleEvent) []int64 {
	t.Helper()
	seqs := make([]int64, len(evs))
	for i, e := range evs {
		seq, err := s.EventOutbox().Add(ctx(t), e)
		require.NoError(t, err)
		seqs[i] = seq
	}
	return seqs
}

func testEventOutboxAdd(t *testing.T, s store.Store) {
	eo := s.EventOutbox()
	e := newEvent("t", NewID(), 1)
	seqs := addEvents(t, s, e)
	require.Positive(t, seqs[0])
	_, err := eo.Add(ctx(t), e)
	require.ErrorIs(t, err, store.ErrConflict, "one row per event id")
	for _, bad := range []*store.LifecycleEvent{
		nil,
		{TenantID: "t", ProposalID: "p", Payload: []byte{1}},
		{EventID: "x", ProposalID: "p", Payload: []byte{1}},
		{EventID: "x", TenantID: "t", Payload: []byte{1}},
		{EventID: "x", TenantID: "t", ProposalID: "p"},
		{EventID: "x", TenantID: "t", ProposalID: "p", Payload: make([]byte, store.MaxEventPayload+1)},
	} {
		_, err := eo.Add(ctx(t), bad)
		require.ErrorIs(t, err, store.ErrInvalid, "%+v", bad)
	}
	n, oldest, err := eo.Backlog(ctx(t))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	require.WithinDuration(t, time.Now(), oldest, time.Minute)

	now := time.Now().Add(time.Second)
	got, err := eo.Claim(ctx(t), "r1", now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, e.EventID, got[0].EventID)
	require.Equal(t, e.Payload, got[0].Payload, "payload stored byte for byte")
	require.Equal(t, 1, got[0].Attempts)
	require.Equal(t, "r1", got[0].LeaseOwner)
	deleted, err := eo.Published(ctx(t), "r1", []int64{got[0].Seq, 987654321})
	require.NoError(t, err)
	require.Equal(t, 1, deleted)
	n, oldest, err = eo.Backlog(ctx(t))
	require.NoError(t, err)
	require.Zero(t, n)
	require.True(t, oldest.IsZero())
}

// testEventOutboxOrderPerProposal: only a proposal's oldest event is claimable; its
// next one becomes claimable once it is published, never while it is failed or leased.
func testEventOutboxOrderPerProposal(t *testing.T, s store.Store) {
	eo := s.EventOutbox()
	a, b := NewID(), NewID()
	addEvents(t, s, newEvent("t", a, 1), newEvent("t", a, 2), newEvent("t", b, 1), newEvent("t", a, 3), newEvent("t2", a, 4))
	now := time.Now().Add(time.Second)
	claim := func(owner string) []string {
		got, err := eo.Claim(ctx(t), owner, now, now.Add(time.Minute), 100)
		require.NoError(t, err)
		ids := make([]string, len(got))
		for i, e := range got {
			ids[i] = e.EventID
		}
		return ids
	}
	// Another tenant's proposal with the same id is another proposal.
	require.Equal(t, []string{a + ":1", b + ":1", a + ":4"}, claim("r1"))
	require.Empty(t, claim("r2"), "the heads are leased; the rest wait behind them")

	got, err := eo.Claim(ctx(t), "r1", now.Add(2*time.Minute), now.Add(3*time.Minute), 100)
	require.NoError(t, err)
	require.Len(t, got, 3, "an ended lease frees the heads, and only them")
	require.Equal(t, 2, got[0].Attempts)
	require.NoError(t, eo.Failed(ctx(t), "r1", []int64{got[0].Seq}, "broker down "+strings.Repeat("x", 600), now.Add(time.Hour)))
	_, err = eo.Published(ctx(t), "r1", []int64{got[1].Seq, got[2].Seq})
	require.NoError(t, err)
	got, err = eo.Claim(ctx(t), "r1", now.Add(4*time.Minute), now.Add(5*time.Minute), 100)
	require.NoError(t, err)
	require.Empty(t, got, "a failed head waits for its next attempt, and its proposal's later events behind it")
	got, err = eo.Claim(ctx(t), "r1", now.Add(2*time.Hour), now.Add(3*time.Hour), 100)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, a+":1", got[0].EventID)
	require.Equal(t, store.MaxNotificationError, utf8.RuneCountInString(got[0].LastError), "the error text is bounded")
	_, err = eo.Published(ctx(t), "r1", []int64{got[0].Seq})
	require.NoError(t, err)
	require.Equal(t, []string{a + ":2"}, claim("r1"), "published: the next event of the proposal")
}

func testEventOutboxLease(t *testing.T, s store.Store) {
	eo := s.EventOutbox()
	addEvents(t, s, newEvent("t", NewID(), 1))
	now := time.Now().Add(time.Second)
	_, err := eo.Claim(ctx(t), "", now, now.Add(time.Minute), 1)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = eo.Claim(ctx(t), "r1", now, now, 1)
	require.ErrorIs(t, err, store.ErrInvalid)
	got, err := eo.Claim(ctx(t), "r1", now, now.Add(time.Minute), 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	// The lease ends and r2 takes the row: r1's late acknowledgement deletes nothing.
	again, err := eo.Claim(ctx(t), "r2", now.Add(2*time.Minute), now.Add(3*time.Minute), 1)
	require.NoError(t, err)
	require.Len(t, again, 1)
	n, err := eo.Published(ctx(t), "r1", []int64{got[0].Seq})
	require.NoError(t, err)
	require.Zero(t, n, "r1 lost the lease")
	require.NoError(t, eo.Failed(ctx(t), "r1", []int64{got[0].Seq}, "late", now.Add(time.Hour)))
	n, err = eo.Published(ctx(t), "r2", []int64{got[0].Seq})
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func testEventOutboxInTx(t *testing.T, s store.Store) {
	e := newEvent("t", NewID(), 1)
	boom := errors.New("boom")
	err := s.InTx(ctx(t), func(tx store.Store) error {
		if _, err := tx.EventOutbox().Add(ctx(t), e); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	n, _, err := s.EventOutbox().Backlog(ctx(t))
	require.NoError(t, err)
	require.Zero(t, n, "a rolled back transition leaves no event")
	require.NoError(t, s.InTx(ctx(t), func(tx store.Store) error { _, err := tx.EventOutbox().Add(ctx(t), e); return err }))
	n, _, err = s.EventOutbox().Backlog(ctx(t))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
}

func testEventOutboxClaimConcurrent(t *testing.T, s store.Store) {
	const proposals, per = 40, 3
	var evs []*store.LifecycleEvent
	for range proposals {
		id := NewID()
		for v := 1; v <= per; v++ {
			evs = append(evs, newEvent("t", id, v))
		}
	}
	addEvents(t, s, evs...)
	now := time.Now().Add(time.Second)
	var mu sync.Mutex
	seen := map[string]string{}
	last := map[string]int{}
	var wg sync.WaitGroup
	for _, owner := range []string{"a", "b", "c"} {
		wg.Go(func() {
			for idle := 0; idle < 50; {
				got, err := s.EventOutbox().Claim(context.Background(), owner, now, now.Add(time.Minute), 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					idle++
					time.Sleep(time.Millisecond)
					continue
				}
				idle = 0
				seqs := make([]int64, 0, len(got))
				mu.Lock()
				for _, x := range got {
					if prev, dup := seen[x.EventID]; dup {
						t.Errorf("event %s claimed by %s and %s", x.EventID, prev, owner)
					}
					seen[x.EventID] = owner
					var v int
					_, _ = fmt.Sscanf(x.EventID[strings.LastIndexByte(x.EventID, ':')+1:], "%d", &v)
					if v != last[x.ProposalID]+1 {
						t.Errorf("event %s claimed after version %d", x.EventID, last[x.ProposalID])
					}
					last[x.ProposalID] = v
					seqs = append(seqs, x.Seq)
				}
				mu.Unlock()
				if _, err := s.EventOutbox().Published(context.Background(), owner, seqs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, seen, proposals*per, "every event claimed exactly once, in order per proposal")
}
