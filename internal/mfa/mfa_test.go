package mfa_test

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/mfa"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// t0 is 10 s into time step 56666667.
var t0 = time.Unix(56666667*30+10, 0).UTC()

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

var testKey = bytes.Repeat([]byte{0x42}, mfa.KeySize)

type env struct {
	s     store.Store
	dsn   string // Postgres only
	dir   string // SQLite only
	clock *clock
	totp  *mfa.TOTP
}

// eachStore runs fn against a fresh SQLite store and a fresh Postgres store.
func eachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s, err := store.Open(t.Context(), store.Config{DataDir: dir})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		fn(t, newEnv(t, &env{s: s, dir: dir}))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.NewDSN(t)
		s, err := store.Open(t.Context(), store.Config{PostgresDSN: dsn})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		fn(t, newEnv(t, &env{s: s, dsn: dsn}))
	})
}

func newEnv(t *testing.T, e *env) *env {
	e.clock = &clock{t: t0}
	var err error
	e.totp, err = mfa.New(e.s.MFA(), testKey, mfa.Options{Now: e.clock.Now})
	require.NoError(t, err)
	return e
}

// enroll enrols subject and returns the base32 secret from the otpauth URI.
func (e *env) enroll(t *testing.T, tenant, subject string) string {
	t.Helper()
	en, err := e.totp.Enroll(t.Context(), tenant, subject)
	require.NoError(t, err)
	k, err := otp.NewKeyFromURL(en.URI)
	require.NoError(t, err)
	return k.Secret()
}

// code is secret's code at time at (what the subject's authenticator app shows).
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return c
}

func ctx(t *testing.T) context.Context { return t.Context() }

// --- The attacker's tests ---

func TestReplayedCodeIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		secret := e.enroll(t, "t1", "alice")
		c := code(t, secret, t0)
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", c))
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", c), mfa.ErrReplayed, "same code, same step")
		e.clock.Advance(20 * time.Second) // next step: the code is still within the skew
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", c), mfa.ErrReplayed, "same code, within skew")
	})
}

func TestEarlierStepAfterLaterIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		secret := e.enroll(t, "t1", "alice")
		later, earlier := code(t, secret, t0.Add(30*time.Second)), code(t, secret, t0)
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", later), "the next step, within skew")
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", earlier), mfa.ErrReplayed,
			"a code of a step before the last accepted one")
	})
}

func TestBruteForceLocks(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		secret := e.enroll(t, "t1", "alice")
		good := code(t, secret, t0)
		wrong := wrongCodes(t, secret, 6)
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", wrong[0]), mfa.ErrInvalidCode)
		err := e.totp.Verify(ctx(t), "t1", "alice", "not-a-code")
		require.ErrorIs(t, err, mfa.ErrInvalidCode, "malformed codes count too")
		require.NotErrorIs(t, err, mfa.ErrLocked)
		// Failures so far: 2. Three more wrong codes lock.
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", wrong[1]), mfa.ErrInvalidCode)
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", wrong[2]), mfa.ErrInvalidCode)
		err = e.totp.Verify(ctx(t), "t1", "alice", wrong[3])
		require.ErrorIs(t, err, mfa.ErrInvalidCode)
		require.ErrorIs(t, err, mfa.ErrLocked, "the fifth wrong code locks")

		// Locked: even the right code is refused, with the retry time.
		err = e.totp.Verify(ctx(t), "t1", "alice", good)
		var le *mfa.LockedError
		require.ErrorAs(t, err, &le)
		require.Equal(t, t0.Add(mfa.DefaultLockFor), le.Until)
		require.Equal(t, mfa.DefaultLockFor, le.RetryAfter(t0))

		// Locked in the store, not in this process: another TOTP over the store agrees.
		other, err := mfa.New(e.s.MFA(), testKey, mfa.Options{Now: e.clock.Now})
		require.NoError(t, err)
		require.ErrorIs(t, other.Verify(ctx(t), "t1", "alice", good), mfa.ErrLocked)

		// The lock expires; the right code then passes and resets the count.
		e.clock.Advance(mfa.DefaultLockFor - time.Second)
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, secret, e.clock.Now())), mfa.ErrLocked)
		e.clock.Advance(time.Second)
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, secret, e.clock.Now())))
		st, err := e.s.MFA().GetTOTP(ctx(t), "t1", "alice")
		require.NoError(t, err)
		require.Zero(t, st.Failures)
		require.True(t, st.LockedUntil.IsZero())
	})
}

func TestConcurrentBruteForceChecksAtMostFiveCodes(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		secret := e.enroll(t, "t1", "alice")
		good := code(t, secret, t0)
		guesses := wrongCodes(t, secret, 30)
		errs := make(chan error, len(guesses))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, g := range guesses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs <- e.totp.Verify(ctx(t), "t1", "alice", g)
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		checked := 0
		for err := range errs {
			require.Error(t, err)
			if errors.Is(err, mfa.ErrInvalidCode) {
				checked++
			} else {
				require.ErrorIs(t, err, mfa.ErrLocked)
			}
		}
		require.LessOrEqual(t, checked, mfa.DefaultMaxFailures, "codes checked before the lock")
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", good), mfa.ErrLocked, "the right code after the burst")
	})
}

func TestAnotherSubjectsOrTenantsSecretIsUseless(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		alice := e.enroll(t, "t1", "alice")
		c := code(t, alice, t0)
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t2", "alice", c), mfa.ErrNotEnrolled, "alice of another tenant")
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "bob", c), mfa.ErrNotEnrolled, "bob is not enrolled")

		bob := e.enroll(t, "t1", "bob")
		require.NotEqual(t, alice, bob)
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "bob", c), mfa.ErrInvalidCode, "alice's code for bob")
		e.enroll(t, "t2", "alice")
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t2", "alice", c), mfa.ErrInvalidCode, "t1's alice code in t2")

		// A database operator copies alice's sealed secret into bob's row: it does not
		// open there (it is bound to tenant and subject), so alice's code gets nothing.
		row, err := e.s.MFA().GetTOTP(ctx(t), "t1", "alice")
		require.NoError(t, err)
		_, err = e.s.MFA().PutTOTP(ctx(t), &store.TOTPEnrollment{TenantID: "t1", Subject: "bob", Secret: row.Secret})
		require.NoError(t, err)
		err = e.totp.Verify(ctx(t), "t1", "bob", c)
		require.Error(t, err)
		require.NotContains(t, err.Error(), alice)

		// Another sealing key opens nothing either.
		stranger, err := mfa.New(e.s.MFA(), bytes.Repeat([]byte{7}, mfa.KeySize), mfa.Options{Now: e.clock.Now})
		require.NoError(t, err)
		require.Error(t, stranger.Verify(ctx(t), "t1", "alice", c))

		// Alice herself still passes.
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", c))
	})
}

func TestCodeOfThePreviousEnrolmentIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		old := e.enroll(t, "t1", "alice")
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, old, t0)))
		e.clock.Advance(30 * time.Second)
		fresh := e.enroll(t, "t1", "alice")
		require.NotEqual(t, old, fresh)
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, old, e.clock.Now())), mfa.ErrInvalidCode)
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, fresh, e.clock.Now())))
	})
}

// raceStore runs hook once, just before the first BeginTOTPAttempt: a re-enrolment
// landing between Verify's read of the enrolment and its compare-and-swap.
type raceStore struct {
	store.MFAStore
	once sync.Once
	hook func()
}

func (r *raceStore) BeginTOTPAttempt(ctx context.Context, tenant, subject string, now, lockUntil time.Time, maxFailures int) (*store.TOTPEnrollment, error) {
	r.once.Do(r.hook)
	return r.MFAStore.BeginTOTPAttempt(ctx, tenant, subject, now, lockUntil, maxFailures)
}

func TestCodeOfASecretReplacedDuringVerifyIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		old := e.enroll(t, "t1", "alice")
		var fresh string
		rs := &raceStore{MFAStore: e.s.MFA(), hook: func() { fresh = e.enroll(t, "t1", "alice") }}
		v, err := mfa.New(rs, testKey, mfa.Options{Now: e.clock.Now})
		require.NoError(t, err)
		require.ErrorIs(t, v.Verify(ctx(t), "t1", "alice", code(t, old, t0)), mfa.ErrInvalidCode)
		require.NotEmpty(t, fresh)
		st, err := e.s.MFA().GetTOTP(ctx(t), "t1", "alice")
		require.NoError(t, err)
		require.Zero(t, st.LastStep, "nothing accepted for the new enrolment")
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, fresh, t0)))
	})
}

func TestConcurrentVerifyOfOneCodePassesOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		secret := e.enroll(t, "t1", "alice")
		c := code(t, secret, t0)
		// More than MaxFailures concurrent attempts lock the enrolment (every attempt
		// counts until settled): keep the rate limit out of this test's way.
		v, err := mfa.New(e.s.MFA(), testKey, mfa.Options{Now: e.clock.Now, MaxFailures: 100})
		require.NoError(t, err)
		const n = 8
		errs := make(chan error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs <- v.Verify(ctx(t), "t1", "alice", c)
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		passed := 0
		for err := range errs {
			if err == nil {
				passed++
				continue
			}
			require.ErrorIs(t, err, mfa.ErrReplayed)
		}
		require.Equal(t, 1, passed)
	})
}

func TestSecretIsEncryptedAtRest(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		secret := e.enroll(t, "t1", "alice")
		row, err := e.s.MFA().GetTOTP(ctx(t), "t1", "alice")
		require.NoError(t, err)
		require.NotContains(t, string(row.Secret), secret)
		require.NotContains(t, strings.ToLower(string(row.Secret)), strings.ToLower(secret))

		var raw []byte
		switch {
		case e.dsn != "":
			conn, err := pgx.Connect(ctx(t), e.dsn)
			require.NoError(t, err)
			defer conn.Close(context.Background())
			var asText string
			require.NoError(t, conn.QueryRow(ctx(t),
				`SELECT secret, encode(secret, 'escape') FROM mfa_totp WHERE tenant_id = 't1' AND subject = 'alice'`).Scan(&raw, &asText))
			require.NotContains(t, asText, secret)
		default:
			require.NoError(t, e.s.Close()) // checkpoint, then read every database file
			files, err := filepath.Glob(filepath.Join(e.dir, store.SQLiteFileName+"*"))
			require.NoError(t, err)
			require.NotEmpty(t, files)
			for _, f := range files {
				b, err := os.ReadFile(f)
				require.NoError(t, err)
				require.NotContains(t, string(b), secret, f)
				raw = append(raw, b...)
			}
		}
		require.NotEmpty(t, raw)
		require.NotContains(t, string(raw), secret)
	})
}

// --- The subject's tests ---

func TestEnroll(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		en, err := e.totp.Enroll(ctx(t), "t1", "alice@example.com")
		require.NoError(t, err)
		u, err := url.Parse(en.URI)
		require.NoError(t, err)
		require.Equal(t, "otpauth", u.Scheme)
		require.Equal(t, "totp", u.Host)
		k, err := otp.NewKeyFromURL(en.URI)
		require.NoError(t, err)
		require.Equal(t, "Decision Fabric", k.Issuer())
		require.Equal(t, "alice@example.com", k.AccountName())
		require.Equal(t, uint64(30), k.Period())
		require.Equal(t, otp.DigitsSix, k.Digits())
		require.Len(t, k.Secret(), 32, "160-bit secret")

		img, err := png.Decode(bytes.NewReader(en.QRPNG))
		require.NoError(t, err)
		require.Equal(t, mfa.QRSize, img.Bounds().Dx())

		_, err = e.totp.Enroll(ctx(t), "", "alice")
		require.Error(t, err)
		_, err = e.totp.Enroll(ctx(t), "t1", "")
		require.Error(t, err)
	})
}

func TestVerifyCorrectCode(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		require.ErrorIs(t, e.totp.Verify(ctx(t), "t1", "alice", "123456"), mfa.ErrNotEnrolled)
		secret := e.enroll(t, "t1", "alice")
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, secret, t0)))
		// Each later step passes once.
		for range 3 {
			e.clock.Advance(30 * time.Second)
			require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", code(t, secret, e.clock.Now())))
		}
		st, err := e.s.MFA().GetTOTP(ctx(t), "t1", "alice")
		require.NoError(t, err)
		require.Equal(t, t0.Unix()/30+3, st.LastStep)
	})
}

func TestSkew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset time.Duration // of the code's time from the verifier's clock
		ok     bool
	}{
		{"now", 0, true},
		{"one step behind", -30 * time.Second, true},
		{"one step ahead", 30 * time.Second, true},
		{"two steps behind", -60 * time.Second, false},
		{"two steps ahead", 60 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, e *env) {
				secret := e.enroll(t, "t1", "alice")
				err := e.totp.Verify(ctx(t), "t1", "alice", code(t, secret, t0.Add(tc.offset)))
				if tc.ok {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, mfa.ErrInvalidCode)
				}
			})
		})
	}
}

func TestMalformedCodes(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.enroll(t, "t1", "alice")
		lenient, err := mfa.New(e.s.MFA(), testKey, mfa.Options{Now: e.clock.Now, MaxFailures: 100})
		require.NoError(t, err)
		for _, c := range []string{"", "12345", "1234567", "12345a", " 123456", "１２３４５６"} {
			require.ErrorIs(t, lenient.Verify(ctx(t), "t1", "alice", c), mfa.ErrInvalidCode, "%q", c)
		}
	})
}

func TestNewValidatesKey(t *testing.T) {
	s, err := store.Open(t.Context(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer s.Close()
	_, err = mfa.New(s.MFA(), make([]byte, 16), mfa.Options{})
	require.Error(t, err)
	_, err = mfa.New(nil, testKey, mfa.Options{})
	require.Error(t, err)
}

func TestLockedErrorMatches(t *testing.T) {
	err := error(&mfa.LockedError{Until: t0})
	require.True(t, errors.Is(err, mfa.ErrLocked))
	require.False(t, errors.Is(err, mfa.ErrInvalidCode))
	require.Equal(t, time.Second, (&mfa.LockedError{Until: t0}).RetryAfter(t0.Add(time.Hour)))
}

// wrongCodes returns n six-digit codes that are none of secret's codes within the skew
// of t0 (a code of the step before or after would be accepted: not a wrong code).
func wrongCodes(t *testing.T, secret string, n int) []string {
	t.Helper()
	valid := map[string]bool{}
	for k := -mfa.Skew; k <= mfa.Skew; k++ {
		valid[code(t, secret, t0.Add(time.Duration(k*mfa.Period)*time.Second))] = true
	}
	var out []string
	for i := 0; len(out) < n; i++ {
		c := strings.Repeat(string(rune('0'+i%10)), 6)
		if !valid[c] {
			out = append(out, c)
		}
	}
	return out
}

// faultStore fails one MFAStore method (by name) with a store error.
type faultStore struct {
	store.MFAStore
	fail string
}

var errStoreDown = errors.New("store down")

func (f *faultStore) err(method string) error {
	if f.fail == method {
		return errStoreDown
	}
	return nil
}

func (f *faultStore) GetTOTP(ctx context.Context, tenant, subject string) (*store.TOTPEnrollment, error) {
	if err := f.err("GetTOTP"); err != nil {
		return nil, err
	}
	return f.MFAStore.GetTOTP(ctx, tenant, subject)
}

func (f *faultStore) BeginTOTPAttempt(ctx context.Context, tenant, subject string, now, lockUntil time.Time, maxFailures int) (*store.TOTPEnrollment, error) {
	if err := f.err("BeginTOTPAttempt"); err != nil {
		return nil, err
	}
	return f.MFAStore.BeginTOTPAttempt(ctx, tenant, subject, now, lockUntil, maxFailures)
}

func (f *faultStore) AcceptTOTPStep(ctx context.Context, tenant, subject string, secret []byte, step int64, now time.Time) (*store.TOTPEnrollment, error) {
	if err := f.err("AcceptTOTPStep"); err != nil {
		return nil, err
	}
	return f.MFAStore.AcceptTOTPStep(ctx, tenant, subject, secret, step, now)
}

func (f *faultStore) RecordTOTPFailure(ctx context.Context, tenant, subject string, now, lockUntil time.Time, maxFailures int) (*store.TOTPEnrollment, error) {
	if err := f.err("RecordTOTPFailure"); err != nil {
		return nil, err
	}
	return f.MFAStore.RecordTOTPFailure(ctx, tenant, subject, now, lockUntil, maxFailures)
}

// A store error fails closed: the right code does not verify while any step of the
// verification cannot reach the store, the error says so, and the code then still
// passes once (it was not spent by the failed attempt).
func TestStoreErrorsFailClosed(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		secret := e.enroll(t, "t1", "alice")
		good := code(t, secret, t0)
		for _, method := range []string{"GetTOTP", "BeginTOTPAttempt", "AcceptTOTPStep"} {
			fs := &faultStore{MFAStore: e.s.MFA(), fail: method}
			v, err := mfa.New(fs, testKey, mfa.Options{Now: e.clock.Now, MaxFailures: 100})
			require.NoError(t, err)
			err = v.Verify(ctx(t), "t1", "alice", good)
			require.ErrorIs(t, err, errStoreDown, "%s fails: the right code must not verify", method)
		}
		// Settling a wrong code cannot reach the store: still an error, not a pass.
		fs := &faultStore{MFAStore: e.s.MFA(), fail: "RecordTOTPFailure"}
		v, err := mfa.New(fs, testKey, mfa.Options{Now: e.clock.Now, MaxFailures: 100})
		require.NoError(t, err)
		require.ErrorIs(t, v.Verify(ctx(t), "t1", "alice", wrongCodes(t, secret, 1)[0]), errStoreDown)
		require.NoError(t, e.totp.Verify(ctx(t), "t1", "alice", good))
		// A replay whose refusal cannot be recorded is still refused.
		require.ErrorIs(t, v.Verify(ctx(t), "t1", "alice", good), errStoreDown)
	})
}
