package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

var leaseStates = []string{"SUBMITTED", "NEGOTIATING", "AGREED"}

// testClaimWork: claims take only unleased or expired work in the given states, never
// change the proposal's version, and two claimers get disjoint sets.
func testClaimWork(t *testing.T, s store.Store) {
	now := time.Now().UTC()
	mk := func(status string, owner string, until time.Time) *store.Proposal {
		p := NewProposal("tenant-a")
		p.Status, p.LeaseOwner, p.LeaseUntil = status, owner, until
		return mustCreate(t, s, p)
	}
	free := mk("SUBMITTED", "", time.Time{})
	expired := mk("NEGOTIATING", "dead", now.Add(-time.Second))
	held := mk("NEGOTIATING", "alive", now.Add(24*time.Hour))
	done := mk("ENACTED", "", time.Time{})

	got, err := s.Proposals().ClaimWork(ctx(t), "me", leaseStates, now, now.Add(30*time.Second), 10)
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, p := range got {
		ids[p.ID] = true
		require.Equal(t, int64(1), p.Version, "a lease is not a change of the proposal")
	}
	require.Equal(t, map[string]bool{free.ID: true, expired.ID: true}, ids, "unleased and expired work only; not %s (held) or %s (done)", held.ID, done.ID)

	again, err := s.Proposals().ClaimWork(ctx(t), "other", leaseStates, now, now.Add(30*time.Second), 10)
	require.NoError(t, err)
	require.Empty(t, again, "work leased to me is not claimed by another before the lease ends")

	// The lease ends: the next claimer after that time takes it.
	later := now.Add(45 * time.Second)
	taken, err := s.Proposals().ClaimWork(ctx(t), "other", leaseStates, later, later.Add(30*time.Second), 10)
	require.NoError(t, err)
	require.Len(t, taken, 2)

	// Renew: only the owner's leases on work states move.
	n, err := s.Proposals().RenewLeases(ctx(t), "other", leaseStates, later.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	none, err := s.Proposals().ClaimWork(ctx(t), "me", leaseStates, later.Add(time.Minute), later.Add(2*time.Minute), 10)
	require.NoError(t, err)
	require.Empty(t, none, "renewed leases hold")

	// Release: claimable at once.
	require.NoError(t, s.Proposals().ReleaseLeases(ctx(t), "other"))
	back, err := s.Proposals().ClaimWork(ctx(t), "me", leaseStates, now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, back, 2)

	_, err = s.Proposals().ClaimWork(ctx(t), "", leaseStates, now, now, 1)
	require.ErrorIs(t, err, store.ErrInvalid)
}

// testClaimWorkConcurrent: racing claimers never get the same proposal.
func testClaimWorkConcurrent(t *testing.T, s store.Store) {
	const n = 60
	for range n {
		p := NewProposal("tenant-a")
		p.Status = "SUBMITTED"
		mustCreate(t, s, p)
	}
	now := time.Now().UTC()
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := string(rune('a' + c))
			for range 10 {
				got, err := s.Proposals().ClaimWork(context.Background(), owner, leaseStates, now, now.Add(time.Minute), 7)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, p := range got {
					if prev, dup := seen[p.ID]; dup {
						t.Errorf("proposal %s claimed by %s and %s", p.ID, prev, owner)
					}
					seen[p.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, n, "every proposal claimed exactly once")
}
