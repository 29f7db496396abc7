package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// mfaTests are the MFAStore conformance subtests; Run runs them.
var mfaTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"TOTPPutGet", testTOTPPutGet},
	{"TOTPTenantIsolation", testTOTPTenantIsolation},
	{"TOTPAcceptStep", testTOTPAcceptStep},
	{"TOTPAcceptStepConcurrent", testTOTPAcceptStepConcurrent},
	{"TOTPAttempts", testTOTPAttempts},
	{"TOTPAttemptsConcurrent", testTOTPAttemptsConcurrent},
}

var mfaT0 = time.Date(2026, 1, 2, 3, 4, 5, 6007, time.UTC)

func putTOTP(t *testing.T, s store.Store, tenant, subject string, secret []byte) *store.TOTPEnrollment {
	t.Helper()
	e, err := s.MFA().PutTOTP(ctx(t), &store.TOTPEnrollment{TenantID: tenant, Subject: subject, Secret: secret, CreatedAt: mfaT0})
	require.NoError(t, err)
	return e
}

func testTOTPPutGet(t *testing.T, s store.Store) {
	m := s.MFA()
	_, err := m.GetTOTP(ctx(t), "t", "alice")
	require.ErrorIs(t, err, store.ErrNotFound)

	in := &store.TOTPEnrollment{TenantID: "t", Subject: "alice", Secret: []byte{0, 1, 2, 0xff}, CreatedAt: mfaT0,
		LastStep: 99, Failures: 3, LockedUntil: mfaT0.Add(time.Hour)}
	orig := *in
	got, err := m.PutTOTP(ctx(t), in)
	require.NoError(t, err)
	require.Equal(t, orig, *in, "PutTOTP must not modify its input")
	want := &store.TOTPEnrollment{TenantID: "t", Subject: "alice", Secret: []byte{0, 1, 2, 0xff},
		CreatedAt: mfaT0.Truncate(time.Microsecond)}
	require.Equal(t, want, got, "LastStep, Failures and LockedUntil start empty")
	read, err := m.GetTOTP(ctx(t), "t", "alice")
	require.NoError(t, err)
	require.Equal(t, want, read)

	// Advance the state, then re-enrol: everything is reset.
	_, err = m.AcceptTOTPStep(ctx(t), "t", "alice", []byte{0, 1, 2, 0xff}, 7, mfaT0)
	require.NoError(t, err)
	_, err = m.BeginTOTPAttempt(ctx(t), "t", "alice", mfaT0, mfaT0.Add(time.Minute), 1)
	require.NoError(t, err)
	locked, err := m.RecordTOTPFailure(ctx(t), "t", "alice", mfaT0, mfaT0.Add(time.Minute), 1)
	require.NoError(t, err)
	require.False(t, locked.LockedUntil.IsZero())
	again, err := m.PutTOTP(ctx(t), &store.TOTPEnrollment{TenantID: "t", Subject: "alice", Secret: []byte("new")})
	require.NoError(t, err)
	require.Equal(t, []byte("new"), again.Secret)
	require.Zero(t, again.LastStep)
	require.Zero(t, again.Failures)
	require.True(t, again.LockedUntil.IsZero())
	require.False(t, again.CreatedAt.IsZero(), "store clock when CreatedAt is zero")

	for _, bad := range []*store.TOTPEnrollment{
		{Subject: "a", Secret: []byte("x")}, {TenantID: "t", Secret: []byte("x")}, {TenantID: "t", Subject: "a"},
	} {
		_, err := m.PutTOTP(ctx(t), bad)
		require.ErrorIs(t, err, store.ErrInvalid)
	}
}

func testTOTPTenantIsolation(t *testing.T, s store.Store) {
	m := s.MFA()
	putTOTP(t, s, "t1", "alice", []byte("s1"))
	for _, k := range [][2]string{{"t2", "alice"}, {"t1", "bob"}} {
		_, err := m.GetTOTP(ctx(t), k[0], k[1])
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = m.AcceptTOTPStep(ctx(t), k[0], k[1], []byte("s1"), 5, mfaT0)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = m.BeginTOTPAttempt(ctx(t), k[0], k[1], mfaT0, mfaT0, 5)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = m.RecordTOTPFailure(ctx(t), k[0], k[1], mfaT0, mfaT0, 5)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	got, err := m.GetTOTP(ctx(t), "t1", "alice")
	require.NoError(t, err)
	require.Zero(t, got.LastStep)
	require.Zero(t, got.Failures)
}

func testTOTPAcceptStep(t *testing.T, s store.Store) {
	m := s.MFA()
	putTOTP(t, s, "t", "alice", []byte("sealed"))
	e, err := m.AcceptTOTPStep(ctx(t), "t", "alice", []byte("sealed"), 100, mfaT0)
	require.NoError(t, err)
	require.Equal(t, int64(100), e.LastStep)

	_, err = m.AcceptTOTPStep(ctx(t), "t", "alice", []byte("sealed"), 100, mfaT0)
	require.ErrorIs(t, err, store.ErrConflict, "a step is accepted once")
	_, err = m.AcceptTOTPStep(ctx(t), "t", "alice", []byte("sealed"), 99, mfaT0)
	require.ErrorIs(t, err, store.ErrConflict, "an earlier step after a later one")
	_, err = m.AcceptTOTPStep(ctx(t), "t", "alice", []byte("other"), 101, mfaT0)
	require.ErrorIs(t, err, store.ErrConflict, "the enrolment's secret changed")
	_, err = m.AcceptTOTPStep(ctx(t), "t", "alice", []byte("sealed"), 0, mfaT0)
	require.ErrorIs(t, err, store.ErrInvalid)

	// Locked: refused until the lock has passed, then accepted and the lock cleared.
	_, err = m.BeginTOTPAttempt(ctx(t), "t", "alice", mfaT0, mfaT0.Add(5*time.Minute), 1)
	require.NoError(t, err)
	locked, err := m.RecordTOTPFailure(ctx(t), "t", "alice", mfaT0, mfaT0.Add(5*time.Minute), 1)
	require.NoError(t, err)
	require.Equal(t, mfaT0.Add(5*time.Minute).Truncate(time.Microsecond), locked.LockedUntil)
	_, err = m.AcceptTOTPStep(ctx(t), "t", "alice", []byte("sealed"), 101, mfaT0.Add(5*time.Minute-time.Second))
	require.ErrorIs(t, err, store.ErrConflict, "locked")
	e, err = m.AcceptTOTPStep(ctx(t), "t", "alice", []byte("sealed"), 101, mfaT0.Add(5*time.Minute))
	require.NoError(t, err)
	require.Equal(t, int64(101), e.LastStep)
	require.Zero(t, e.Failures)
	require.True(t, e.LockedUntil.IsZero())

	got, err := m.GetTOTP(ctx(t), "t", "alice")
	require.NoError(t, err)
	require.Equal(t, e, got)
}

func testTOTPAcceptStepConcurrent(t *testing.T, s store.Store) {
	putTOTP(t, s, "t", "alice", []byte("sealed"))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.MFA().AcceptTOTPStep(ctx(t), "t", "alice", []byte("sealed"), 42, mfaT0)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, store.ErrConflict)
	}
	require.Equal(t, 1, wins, "one step, one acceptance")
}

func testTOTPAttempts(t *testing.T, s store.Store) {
	m := s.MFA()
	putTOTP(t, s, "t", "alice", []byte("sealed"))
	lock := mfaT0.Add(5 * time.Minute)
	begin := func(at time.Time) *store.TOTPEnrollment {
		e, err := m.BeginTOTPAttempt(ctx(t), "t", "alice", at, lock, 5)
		require.NoError(t, err)
		return e
	}
	fail := func(at time.Time) *store.TOTPEnrollment {
		e, err := m.RecordTOTPFailure(ctx(t), "t", "alice", at, lock, 5)
		require.NoError(t, err)
		return e
	}
	// Four refused attempts: counted, not locked.
	for i := 1; i < 5; i++ {
		require.Equal(t, i, begin(mfaT0).Failures)
		e := fail(mfaT0)
		require.Equal(t, i, e.Failures, "RecordTOTPFailure does not count again")
		require.True(t, e.LockedUntil.IsZero(), "not locked after %d failures", i)
	}
	// The fifth attempt is counted; refusing it locks.
	require.Equal(t, 5, begin(mfaT0).Failures)
	e := fail(mfaT0)
	require.Equal(t, lock.Truncate(time.Microsecond), e.LockedUntil, "the fifth failure locks")
	require.Zero(t, e.Failures, "the count restarts with the lock")
	// While locked, attempts change nothing.
	require.Equal(t, e, begin(mfaT0.Add(time.Minute)))
	require.Equal(t, e, fail(mfaT0.Add(time.Minute)))
	// After the lock, attempts count from 0 again.
	require.Equal(t, 1, begin(lock).Failures)

	// Attempts left unsettled (a crashed verifier) still end in a lock.
	putTOTP(t, s, "t", "bob", []byte("sealed"))
	for range 5 {
		_, err := m.BeginTOTPAttempt(ctx(t), "t", "bob", mfaT0, lock, 5)
		require.NoError(t, err)
	}
	e, err := m.BeginTOTPAttempt(ctx(t), "t", "bob", mfaT0, lock, 5)
	require.NoError(t, err)
	require.Equal(t, lock.Truncate(time.Microsecond), e.LockedUntil, "a sixth attempt finds five counted and locks")

	_, err = m.BeginTOTPAttempt(ctx(t), "t", "alice", mfaT0, lock, 0)
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = m.RecordTOTPFailure(ctx(t), "t", "alice", mfaT0, lock, 0)
	require.ErrorIs(t, err, store.ErrInvalid)
}

// testTOTPAttemptsConcurrent: of many concurrent attempts at most maxFailures are
// let through (not locked) before the lock.
func testTOTPAttemptsConcurrent(t *testing.T, s store.Store) {
	putTOTP(t, s, "t", "alice", []byte("sealed"))
	lock := mfaT0.Add(5 * time.Minute)
	const n = 16
	var wg sync.WaitGroup
	type res struct {
		e   *store.TOTPEnrollment
		err error
	}
	out := make(chan res, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := s.MFA().BeginTOTPAttempt(ctx(t), "t", "alice", mfaT0, lock, 5)
			out <- res{e, err}
		}()
	}
	wg.Wait()
	close(out)
	through := 0
	for r := range out {
		require.NoError(t, r.err)
		if !mfaT0.Before(r.e.LockedUntil) {
			through++
		}
	}
	require.Equal(t, 5, through, "exactly maxFailures attempts get through")
	got, err := s.MFA().GetTOTP(ctx(t), "t", "alice")
	require.NoError(t, err)
	require.Equal(t, lock.Truncate(time.Microsecond), got.LockedUntil)
}
