package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// canaryRunTests are the CanaryRunStore conformance subtests; Run runs them.
var canaryRunTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"CanaryRunRoundTrip", testCanaryRunRoundTrip},
	{"CanaryRunInvalid", testCanaryRunInvalid},
	{"CanaryRunTenantIsolation", testCanaryRunTenantIsolation},
	{"CanaryRunUpdate", testCanaryRunUpdate},
	{"CanaryRunUpdateConcurrent", testCanaryRunUpdateConcurrent},
	{"CanaryRunList", testCanaryRunList},
	{"CanaryRunListRunning", testCanaryRunListRunning},
	{"CanaryRunLease", testCanaryRunLease},
}

// One sim-canary at a time drives a RUNNING rollout: its lease is renewed by its
// holder, refused to others until it ends or is released, and never given on a run
// that is not RUNNING or another tenant's.
func testCanaryRunLease(t *testing.T, s store.Store) {
	cr := s.CanaryRuns()
	in := newCanaryRun("t", "P1")
	in.State, in.DryRun = "RUNNING", false
	r, err := cr.Create(ctx(t), in)
	require.NoError(t, err)
	now := canaryT0.Add(time.Hour)
	until := now.Add(15 * time.Second)

	ok, err := cr.Lease(ctx(t), "t", r.ID, "a", now, until)
	require.NoError(t, err)
	require.True(t, ok, "a run never leased goes to the first asker")
	ok, err = cr.Lease(ctx(t), "t", r.ID, "b", now.Add(time.Second), until.Add(time.Second))
	require.NoError(t, err)
	require.False(t, ok, "b must not take a's running lease")
	ok, err = cr.Lease(ctx(t), "t", r.ID, "a", now.Add(5*time.Second), until.Add(5*time.Second))
	require.NoError(t, err)
	require.True(t, ok, "a renews its own lease")
	ok, err = cr.Lease(ctx(t), "t", r.ID, "b", until.Add(time.Second), until.Add(time.Second))
	require.Error(t, err, "a lease ending at its start is invalid")
	require.False(t, ok)
	ok, err = cr.Lease(ctx(t), "t", r.ID, "b", until.Add(time.Second), until.Add(16*time.Second))
	require.NoError(t, err)
	require.False(t, ok, "a's renewal moved the end: b must still wait")
	ok, err = cr.Lease(ctx(t), "t", r.ID, "b", until.Add(6*time.Second), until.Add(21*time.Second))
	require.NoError(t, err)
	require.True(t, ok, "b takes the run over once a's lease ended")
	ok, err = cr.Lease(ctx(t), "t", r.ID, "a", until.Add(7*time.Second), until.Add(22*time.Second))
	require.NoError(t, err)
	require.False(t, ok, "a lost the run to b")

	// b stops: its leases are released, and a takes the run at once.
	require.NoError(t, cr.ReleaseLeases(ctx(t), "b"))
	ok, err = cr.Lease(ctx(t), "t", r.ID, "a", until.Add(8*time.Second), until.Add(23*time.Second))
	require.NoError(t, err)
	require.True(t, ok, "a takes the run b released")

	_, err = cr.Lease(ctx(t), "other", r.ID, "a", now, until)
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's run")
	_, err = cr.Lease(ctx(t), "t", NewID(), "a", now, until)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = cr.Lease(ctx(t), "t", r.ID, "", now, until)
	require.ErrorIs(t, err, store.ErrInvalid)

	// A run that ended is no longer driven by anyone.
	got, err := cr.Get(ctx(t), "t", r.ID)
	require.NoError(t, err)
	_, err = cr.Update(ctx(t), "t", r.ID, got.Version, "PROMOTED", got.Run)
	require.NoError(t, err)
	ok, err = cr.Lease(ctx(t), "t", r.ID, "a", until.Add(9*time.Second), until.Add(24*time.Second))
	require.NoError(t, err)
	require.False(t, ok, "a run that is not RUNNING has no lease to take")
}

var canaryT0 = time.Date(2026, 3, 4, 5, 6, 7, 8009, time.UTC)

func newCanaryRun(tenant, proposal string) *store.CanaryRun {
	return &store.CanaryRun{ID: NewID(), TenantID: tenant, ProposalID: proposal, State: "PASSED", DryRun: true,
		CreatedBy: "alice", Run: []byte(`{"steps":[{"name":"policy","result":"PASSED"}],"z":"ü"}`), CreatedAt: canaryT0}
}

func testCanaryRunRoundTrip(t *testing.T, s store.Store) {
	in := newCanaryRun("t", "P1")
	orig := *in
	got, err := s.CanaryRuns().Create(ctx(t), in)
	require.NoError(t, err)
	require.Equal(t, orig, *in, "Create must not modify its input")
	want := orig
	want.Version, want.CreatedAt, want.UpdatedAt = 1, canaryT0.Truncate(time.Microsecond), canaryT0.Truncate(time.Microsecond)
	require.Equal(t, &want, got)
	read, err := s.CanaryRuns().Get(ctx(t), "t", in.ID)
	require.NoError(t, err)
	require.Equal(t, &want, read, "the record comes back byte for byte")

	_, err = s.CanaryRuns().Create(ctx(t), in)
	require.ErrorIs(t, err, store.ErrConflict, "a duplicate id")

	noTime := newCanaryRun("t", "P1")
	noTime.CreatedAt = time.Time{}
	before := time.Now().UTC().Add(-time.Second)
	got, err = s.CanaryRuns().Create(ctx(t), noTime)
	require.NoError(t, err)
	require.True(t, got.CreatedAt.After(before), "the store clock when CreatedAt is zero")
	require.True(t, got.DryRun, "dry_run round-trips")
}

func testCanaryRunInvalid(t *testing.T, s store.Store) {
	cases := map[string]func(r *store.CanaryRun){
		"bad id":          func(r *store.CanaryRun) { r.ID = "nope" },
		"no tenant":       func(r *store.CanaryRun) { r.TenantID = "" },
		"no proposal":     func(r *store.CanaryRun) { r.ProposalID = "" },
		"no state":        func(r *store.CanaryRun) { r.State = "" },
		"NUL in state":    func(r *store.CanaryRun) { r.State = "A\x00" },
		"record not obj":  func(r *store.CanaryRun) { r.Run = []byte(`[1]`) },
		"record not json": func(r *store.CanaryRun) { r.Run = []byte(`{`) },
		"record too big": func(r *store.CanaryRun) {
			r.Run = []byte(fmt.Sprintf(`{"x":%q}`, make([]byte, store.MaxCanaryRunBytes)))
		},
	}
	for name, edit := range cases {
		r := newCanaryRun("t", "P1")
		edit(r)
		_, err := s.CanaryRuns().Create(ctx(t), r)
		require.ErrorIs(t, err, store.ErrInvalid, name)
		_, err = s.CanaryRuns().Get(ctx(t), "t", r.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "%s: nothing written", name)
	}
	_, err := s.CanaryRuns().Create(ctx(t), nil)
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testCanaryRunTenantIsolation(t *testing.T, s store.Store) {
	r, err := s.CanaryRuns().Create(ctx(t), newCanaryRun("t1", "P1"))
	require.NoError(t, err)
	_, err = s.CanaryRuns().Get(ctx(t), "t2", r.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.CanaryRuns().Update(ctx(t), "t2", r.ID, 1, "STOPPED", []byte(`{}`))
	require.ErrorIs(t, err, store.ErrNotFound)
	list, err := s.CanaryRuns().ListByProposal(ctx(t), "t2", "P1", 0)
	require.NoError(t, err)
	require.Empty(t, list)
	read, err := s.CanaryRuns().Get(ctx(t), "t1", r.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), read.Version, "another tenant's update changed nothing")
}

func testCanaryRunUpdate(t *testing.T, s store.Store) {
	r, err := s.CanaryRuns().Create(ctx(t), newCanaryRun("t", "P1"))
	require.NoError(t, err)
	up, err := s.CanaryRuns().Update(ctx(t), "t", r.ID, 1, "ROLLED_BACK", []byte(`{"stages":[1]}`))
	require.NoError(t, err)
	require.Equal(t, int64(2), up.Version)
	require.Equal(t, "ROLLED_BACK", up.State)
	require.Equal(t, `{"stages":[1]}`, string(up.Run))
	require.Equal(t, r.CreatedAt, up.CreatedAt)
	require.False(t, up.UpdatedAt.Before(r.UpdatedAt))

	_, err = s.CanaryRuns().Update(ctx(t), "t", r.ID, 1, "PROMOTED", []byte(`{}`))
	require.ErrorIs(t, err, store.ErrConflict, "a stale version")
	_, err = s.CanaryRuns().Update(ctx(t), "t", NewID(), 1, "PROMOTED", []byte(`{}`))
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.CanaryRuns().Update(ctx(t), "t", r.ID, 2, "PROMOTED", []byte(`not json`))
	require.ErrorIs(t, err, store.ErrInvalid)
	read, err := s.CanaryRuns().Get(ctx(t), "t", r.ID)
	require.NoError(t, err)
	require.Equal(t, up, read, "refused updates changed nothing")
}

func testCanaryRunUpdateConcurrent(t *testing.T, s store.Store) {
	r, err := s.CanaryRuns().Create(ctx(t), newCanaryRun("t", "P1"))
	require.NoError(t, err)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.CanaryRuns().Update(ctx(t), "t", r.ID, 1, fmt.Sprintf("S%d", i), []byte(`{}`))
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			require.ErrorIs(t, err, store.ErrConflict)
		}
	}
	require.Equal(t, 1, won, "exactly one compare-and-swap wins")
}

func testCanaryRunList(t *testing.T, s store.Store) {
	var ids []string
	for i := range 3 {
		r := newCanaryRun("t", "P1")
		r.CreatedAt = canaryT0.Add(time.Duration(i) * time.Second)
		_, err := s.CanaryRuns().Create(ctx(t), r)
		require.NoError(t, err)
		ids = append(ids, r.ID)
	}
	_, err := s.CanaryRuns().Create(ctx(t), newCanaryRun("t", "P2"))
	require.NoError(t, err)
	list, err := s.CanaryRuns().ListByProposal(ctx(t), "t", "P1", 2)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, ids[2], list[0].ID, "newest first")
	require.Equal(t, ids[1], list[1].ID)
}

func testCanaryRunListRunning(t *testing.T, s store.Store) {
	var want []string
	for i, st := range []string{"RUNNING", "PROMOTED", "RUNNING", "HELD"} {
		r := newCanaryRun(fmt.Sprintf("t%d", i), "P1")
		r.State, r.CreatedAt = st, canaryT0.Add(time.Duration(i)*time.Second)
		_, err := s.CanaryRuns().Create(ctx(t), r)
		require.NoError(t, err)
		if st == "RUNNING" {
			want = append(want, r.ID)
		}
	}
	list, err := s.CanaryRuns().ListRunning(ctx(t), 0)
	require.NoError(t, err)
	var got []string
	for _, r := range list {
		got = append(got, r.ID)
	}
	require.Equal(t, want, got, "every tenant's running runs, oldest first")
	list, err = s.CanaryRuns().ListRunning(ctx(t), 1)
	require.NoError(t, err)
	require.Len(t, list, 1)
}
