// Package mfa is the hil-gateway's TOTP second factor (issue 11): enrolment, and the
// verification of an approver's code per RFC 6238 (30-second steps, six digits,
// HMAC-SHA1, one step of clock skew either way) with what the library
// (github.com/pquerna/otp) does not do itself:
//
//   - Each time step is accepted at most once. The last accepted step is stored with
//     the enrolment, and a code is accepted only with one compare-and-swap statement
//     that moves it forward (store.MFAStore.AcceptTOTPStep): a replayed code, or any
//     code of a step at or before the last accepted one, is refused, and two
//     concurrent verifications of one code cannot both pass.
//   - Refused codes (wrong, malformed or replayed) are counted in the store:
//     MaxFailures of them lock the enrolment for LockFor; a success resets the count.
//     Each attempt is counted before its code is checked
//     (store.MFAStore.BeginTOTPAttempt), so concurrent guesses cannot outrun the
//     limit: at most MaxFailures codes are checked per lock. (So more than
//     MaxFailures concurrent attempts, even of the right code, lock the enrolment.)
//   - The secret is sealed with AES-256-GCM under a key the caller supplies (from the
//     fabric's key material), with the tenant and subject as additional data, so the
//     store holds only ciphertext and a sealed secret moved to another row does not
//     open. The secret is never logged: no error or String method here carries it.
//
// Errors are typed for the API: ErrNotEnrolled (403), ErrInvalidCode and ErrReplayed
// (401), and a *LockedError, which matches ErrLocked and carries the retry time (429).
package mfa

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"image/png"
	"io"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/decision-fabric/fabric/internal/store"
)

// Issuer is the issuer shown by authenticator apps.
const Issuer = "Decision Fabric"

// TOTP parameters (RFC 6238 defaults, which every authenticator app supports).
const (
	Period = 30 // seconds per time step
	Skew   = 1  // steps accepted either side of the current one
	Digits = otp.DigitsSix
)

// Defaults of the rate limit.
const (
	DefaultMaxFailures = 5
	DefaultLockFor     = 5 * time.Minute
	// QRSize is the width and height in pixels of the enrolment QR code.
	QRSize = 256
)

// KeySize is the length of the sealing key: AES-256.
const KeySize = 32

var (
	// ErrNotEnrolled: the subject has no TOTP enrolment in the tenant.
	ErrNotEnrolled = errors.New("mfa: not enrolled")
	// ErrInvalidCode: the code is not a valid code of the enrolment at this time.
	ErrInvalidCode = errors.New("mfa: invalid code")
	// ErrReplayed: the code is valid, but its time step (or a later one) was already
	// accepted.
	ErrReplayed = errors.New("mfa: code already used")
	// ErrLocked: too many wrong codes; the returned error is a *LockedError.
	ErrLocked = errors.New("mfa: locked after too many wrong codes")
)

// LockedError is returned while an enrolment is locked. It matches ErrLocked.
type LockedError struct {
	Until time.Time // codes are refused before Until
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s until %s", ErrLocked, e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// RetryAfter is how long from now until codes are accepted again (at least 1 s).
func (e *LockedError) RetryAfter(now time.Time) time.Duration {
	d := e.Until.Sub(now)
	if d < time.Second {
		return time.Second
	}
	return d
}

// Options configure a TOTP.
type Options struct {
	Now         func() time.Time // clock; time.Now when nil
	Rand        io.Reader        // randomness for secrets and nonces; crypto/rand when nil
	MaxFailures int              // DefaultMaxFailures when <= 0
	LockFor     time.Duration    // DefaultLockFor when <= 0
}

// TOTP enrols subjects and verifies their codes. It is safe for concurrent use.
type TOTP struct {
	mfa         store.MFAStore
	aead        cipher.AEAD
	now         func() time.Time
	rand        io.Reader
	maxFailures int
	lockFor     time.Duration
}

// New returns a TOTP over m whose secrets are sealed with key (KeySize bytes, from the
// fabric's key material; it is copied into the cipher and not kept).
func New(m store.MFAStore, key []byte, o Options) (*TOTP, error) {
	if m == nil {
		return nil, errors.New("mfa: a store is required")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("mfa: the sealing key must be %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	t := &TOTP{mfa: m, aead: aead, now: o.Now, rand: o.Rand, maxFailures: o.MaxFailures, lockFor: o.LockFor}
	if t.now == nil {
		t.now = time.Now
	}
	if t.rand == nil {
		t.rand = rand.Reader
	}
	if t.maxFailures <= 0 {
		t.maxFailures = DefaultMaxFailures
	}
	if t.lockFor <= 0 {
		t.lockFor = DefaultLockFor
	}
	return t, nil
}

// Enrollment is what an enrolling subject needs to set up an authenticator app.
type Enrollment struct {
	// URI is the otpauth://totp/ URI (issuer "Decision Fabric", account = subject);
	// it contains the secret: show it to the subject only, never log it.
	URI string
	// QRPNG is the URI as a QR code, a PNG image.
	QRPNG []byte
}

// Enroll creates a fresh secret for subject in tenant, replacing any earlier one
// (its codes stop working, and the replay and failure state starts afresh).
// subject is stored as the enrolment's key and shown as the account name; callers
// that must not store a raw JWT subject (docs/security.md) pass Principal.Actor().
func (t *TOTP) Enroll(ctx context.Context, tenant, subject string) (*Enrollment, error) {
	if tenant == "" || subject == "" {
		return nil, errors.New("mfa: tenant and subject are required")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: Issuer, AccountName: subject, Period: Period, Digits: Digits,
		Algorithm: otp.AlgorithmSHA1, SecretSize: 20, Rand: t.rand,
	})
	if err != nil {
		return nil, fmt.Errorf("mfa: generate secret: %w", err)
	}
	img, err := key.Image(QRSize, QRSize)
	if err != nil {
		return nil, fmt.Errorf("mfa: QR code: %w", err)
	}
	var qr bytes.Buffer
	if err := png.Encode(&qr, img); err != nil {
		return nil, fmt.Errorf("mfa: QR code: %w", err)
	}
	sealed, err := t.seal(tenant, subject, key.Secret())
	if err != nil {
		return nil, err
	}
	if _, err := t.mfa.PutTOTP(ctx, &store.TOTPEnrollment{
		TenantID: tenant, Subject: subject, Secret: sealed, CreatedAt: t.now(),
	}); err != nil {
		return nil, fmt.Errorf("mfa: enrol: %w", err)
	}
	return &Enrollment{URI: key.URL(), QRPNG: qr.Bytes()}, nil
}

// Verify checks code for subject in tenant at the clock's time, and accepts it at most
// once. nil means the subject proved possession of the enrolled secret now.
func (t *TOTP) Verify(ctx context.Context, tenant, subject, code string) error {
	now := t.now()
	e, err := t.mfa.GetTOTP(ctx, tenant, subject)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotEnrolled
	}
	if err != nil {
		return fmt.Errorf("mfa: verify: %w", err)
	}
	if now.Before(e.LockedUntil) {
		return &LockedError{Until: e.LockedUntil}
	}
	// sealed is the enrolment the code is checked against; the compare-and-swap
	// below accepts it only for that enrolment (not one made meanwhile).
	sealed := e.Secret
	secret, err := t.open(tenant, subject, sealed)
	if err != nil {
		return err
	}
	// Count the attempt before checking the code: of any number of concurrent
	// guesses at most MaxFailures are checked before the lock.
	e, err = t.mfa.BeginTOTPAttempt(ctx, tenant, subject, now, now.Add(t.lockFor), t.maxFailures)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotEnrolled
	}
	if err != nil {
		return fmt.Errorf("mfa: verify: %w", err)
	}
	if now.Before(e.LockedUntil) {
		return &LockedError{Until: e.LockedUntil}
	}
	step, ok := matchStep(secret, code, now)
	if !ok {
		return t.fail(ctx, tenant, subject, now, ErrInvalidCode)
	}
	if step <= e.LastStep {
		return t.fail(ctx, tenant, subject, now, ErrReplayed)
	}
	_, err = t.mfa.AcceptTOTPStep(ctx, tenant, subject, sealed, step, now)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return ErrNotEnrolled
	case !errors.Is(err, store.ErrConflict):
		return fmt.Errorf("mfa: verify: %w", err)
	}
	// The compare-and-swap lost: find out to what.
	cur, gerr := t.mfa.GetTOTP(ctx, tenant, subject)
	switch {
	case errors.Is(gerr, store.ErrNotFound):
		return ErrNotEnrolled
	case gerr != nil:
		return fmt.Errorf("mfa: verify: %w", gerr)
	case now.Before(cur.LockedUntil):
		return &LockedError{Until: cur.LockedUntil}
	case !bytes.Equal(cur.Secret, sealed):
		return ErrInvalidCode // re-enrolled meanwhile: the code is of the old secret
	default:
		return t.fail(ctx, tenant, subject, now, ErrReplayed)
	}
}

// fail settles a refused attempt (already counted) and returns why, with the lock
// when this attempt completed the limit.
func (t *TOTP) fail(ctx context.Context, tenant, subject string, now time.Time, why error) error {
	e, err := t.mfa.RecordTOTPFailure(ctx, tenant, subject, now, now.Add(t.lockFor), t.maxFailures)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotEnrolled
	}
	if err != nil {
		return fmt.Errorf("mfa: count failure: %w", err)
	}
	if now.Before(e.LockedUntil) {
		return fmt.Errorf("%w; %w", why, &LockedError{Until: e.LockedUntil})
	}
	return why
}

// matchStep returns the time step within ±Skew of now whose code is code, checking
// every candidate in constant time. When two steps match (a 1-in-a-million
// coincidence), the later wins.
func matchStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != Digits.Length() {
		return 0, false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	opts := totp.ValidateOpts{Period: Period, Digits: Digits, Algorithm: otp.AlgorithmSHA1}
	cur := now.Unix() / Period
	var found int64
	for step := cur - Skew; step <= cur+Skew; step++ {
		if step <= 0 {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*Period, 0), opts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found = step
		}
	}
	return found, found > 0
}

// seal encrypts secret for (tenant, subject): nonce || AES-GCM(secret, aad).
func (t *TOTP) seal(tenant, subject, secret string) ([]byte, error) {
	nonce := make([]byte, t.aead.NonceSize())
	if _, err := io.ReadFull(t.rand, nonce); err != nil {
		return nil, fmt.Errorf("mfa: nonce: %w", err)
	}
	return t.aead.Seal(nonce, nonce, []byte(secret), aad(tenant, subject)), nil
}

// open decrypts what seal made for (tenant, subject).
func (t *TOTP) open(tenant, subject string, sealed []byte) (string, error) {
	n := t.aead.NonceSize()
	if len(sealed) < n+t.aead.Overhead() {
		return "", errors.New("mfa: stored secret is malformed")
	}
	plain, err := t.aead.Open(nil, sealed[:n], sealed[n:], aad(tenant, subject))
	if err != nil {
		// Wrong key, or a sealed secret of another tenant or subject.
		return "", errors.New("mfa: stored secret does not open with this key for this subject")
	}
	return string(plain), nil
}

// aad binds a sealed secret to its row: a length-prefixed tenant, then the subject.
func aad(tenant, subject string) []byte {
	return fmt.Appendf(nil, "decision-fabric/mfa/totp/v1\x00%d:%s%s", len(tenant), tenant, subject)
}
