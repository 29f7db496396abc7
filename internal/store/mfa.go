package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TOTPEnrollment is one subject's TOTP second factor in one tenant (internal/mfa).
type TOTPEnrollment struct {
	TenantID string // required
	Subject  string // required: the token's subject
	// Secret is the TOTP secret as internal/mfa sealed it (AES-GCM ciphertext); the
	// store keeps it byte for byte and never sees the plaintext. Required.
	Secret    []byte
	CreatedAt time.Time // UTC; store clock when zero
	// LastStep is the last accepted RFC 6238 time step (0: none accepted yet).
	LastStep int64
	// Failures counts wrong codes since the last success or lock.
	Failures int
	// LockedUntil refuses every code before it; zero when not locked.
	LockedUntil time.Time
}

// MFAStore persists the hil-gateway's TOTP enrolments. All methods are tenant-scoped:
// another tenant's or subject's enrolment is ErrNotFound.
type MFAStore interface {
	// PutTOTP enrols e.TenantID/e.Subject, replacing any earlier enrolment: the
	// new row has e's Secret and CreatedAt, LastStep 0, no failures and no lock
	// (e's other fields are ignored, e is not modified). Returns the stored row.
	PutTOTP(ctx context.Context, e *TOTPEnrollment) (*TOTPEnrollment, error)
	// GetTOTP returns the enrolment; ErrNotFound if none.
	GetTOTP(ctx context.Context, tenantID, subject string) (*TOTPEnrollment, error)
	// AcceptTOTPStep accepts time step step for the enrolment whose sealed secret is
	// secret, in one compare-and-swap statement: it sets LastStep = step, Failures = 0
	// and clears the lock only if the enrolment still has that secret (not re-enrolled
	// since), step > LastStep, and it is not locked at now. Otherwise ErrConflict
	// (ErrNotFound when there is no enrolment). Of concurrent calls with one step at
	// most one succeeds.
	AcceptTOTPStep(ctx context.Context, tenantID, subject string, secret []byte, step int64, now time.Time) (*TOTPEnrollment, error)
	// BeginTOTPAttempt counts a code about to be checked, before it is checked, in
	// one statement, so that concurrent guesses cannot outrun the limit: when the
	// enrolment is locked at now nothing changes; when maxFailures attempts are
	// already counted it is locked until lockUntil (the count restarts at 0);
	// otherwise Failures+1. The caller checks the code only when the returned row is
	// not locked at now. A success (AcceptTOTPStep) resets the count. ErrNotFound if
	// there is no enrolment.
	BeginTOTPAttempt(ctx context.Context, tenantID, subject string, now, lockUntil time.Time, maxFailures int) (*TOTPEnrollment, error)
	// RecordTOTPFailure settles a refused attempt (already counted by
	// BeginTOTPAttempt): when the count has reached maxFailures and the enrolment is
	// not locked at now, it is locked until lockUntil and the count restarts at 0.
	// Returns the row after the update; ErrNotFound if none.
	RecordTOTPFailure(ctx context.Context, tenantID, subject string, now, lockUntil time.Time, maxFailures int) (*TOTPEnrollment, error)
}

func (s *sqlStore) MFA() MFAStore { return mfaStore{s} }

const totpCols = `tenant_id, subject, secret, created_at, last_step, failures, locked_until`

const (
	sqlTOTPGet = `SELECT ` + totpCols + ` FROM mfa_totp WHERE tenant_id = $1 AND subject = $2`
	sqlTOTPPut = `INSERT INTO mfa_totp (` + totpCols + `) VALUES ($1, $2, $3, $4, 0, 0, NULL)
	ON CONFLICT (tenant_id, subject) DO UPDATE
	SET secret = excluded.secret, created_at = excluded.created_at, last_step = 0, failures = 0, locked_until = NULL
	RETURNING ` + totpCols
	sqlTOTPAccept = `UPDATE mfa_totp SET last_step = $4, failures = 0, locked_until = NULL
	WHERE tenant_id = $1 AND subject = $2 AND secret = $3 AND last_step < $4
	  AND (locked_until IS NULL OR locked_until <= $5)
	RETURNING ` + totpCols
	// $3 now, $4 lockUntil, $5 maxFailures. A NULL locked_until makes
	// "locked_until > $3" NULL, which CASE treats as false.
	sqlTOTPBegin = `UPDATE mfa_totp SET
	    failures = CASE WHEN locked_until > $3 THEN failures WHEN failures >= $5 THEN 0 ELSE failures + 1 END,
	    locked_until = CASE WHEN locked_until > $3 THEN locked_until WHEN failures >= $5 THEN $4 ELSE locked_until END
	WHERE tenant_id = $1 AND subject = $2
	RETURNING ` + totpCols
	sqlTOTPFailure = `UPDATE mfa_totp SET
	    failures = CASE WHEN locked_until > $3 THEN failures WHEN failures >= $5 THEN 0 ELSE failures END,
	    locked_until = CASE WHEN locked_until > $3 THEN locked_until WHEN failures >= $5 THEN $4 ELSE locked_until END
	WHERE tenant_id = $1 AND subject = $2
	RETURNING ` + totpCols
)

// nullTimeCol scans a nullable timestamp; NULL is the zero time.
type nullTimeCol struct{ t *time.Time }

func (c nullTimeCol) Scan(src any) error {
	if src == nil {
		*c.t = time.Time{}
		return nil
	}
	return timeCol(c).Scan(src)
}

func scanTOTP(r row) (*TOTPEnrollment, error) {
	var e TOTPEnrollment
	var failures int64
	err := r.Scan(&e.TenantID, &e.Subject, &e.Secret, timeCol{&e.CreatedAt}, &e.LastStep, &failures, nullTimeCol{&e.LockedUntil})
	if err != nil {
		return nil, err
	}
	e.Failures = int(failures)
	return &e, nil
}

type mfaStore struct{ s *sqlStore }

func (m mfaStore) GetTOTP(ctx context.Context, tenantID, subject string) (*TOTPEnrollment, error) {
	e, err := scanTOTP(m.s.r.queryRow(ctx, sqlTOTPGet, tenantID, subject))
	return e, m.s.wrap("get totp enrolment", err)
}

func (m mfaStore) PutTOTP(ctx context.Context, e *TOTPEnrollment) (*TOTPEnrollment, error) {
	if e == nil || e.TenantID == "" || e.Subject == "" || len(e.Secret) == 0 {
		return nil, fmt.Errorf("%w: totp enrolment needs a tenant, a subject and a secret", ErrInvalid)
	}
	created := normTime(e.CreatedAt)
	if e.CreatedAt.IsZero() {
		created = now()
	}
	var stored *TOTPEnrollment
	err := m.s.write(ctx, func(w querier) (err error) {
		stored, err = scanTOTP(w.queryRow(ctx, sqlTOTPPut, e.TenantID, e.Subject, e.Secret, m.s.drv.timeArg(created)))
		return err
	})
	return stored, m.s.wrap("put totp enrolment", err)
}

func (m mfaStore) AcceptTOTPStep(ctx context.Context, tenantID, subject string, secret []byte, step int64, at time.Time) (*TOTPEnrollment, error) {
	if step <= 0 {
		return nil, fmt.Errorf("%w: time step must be positive", ErrInvalid)
	}
	var stored *TOTPEnrollment
	err := m.s.write(ctx, func(w querier) (err error) {
		stored, err = scanTOTP(w.queryRow(ctx, sqlTOTPAccept, tenantID, subject, secret, step, m.s.drv.timeArg(normTime(at))))
		if errors.Is(err, sql.ErrNoRows) {
			// Tell a missing enrolment from a failed precondition.
			if _, gerr := scanTOTP(w.queryRow(ctx, sqlTOTPGet, tenantID, subject)); gerr != nil {
				return gerr
			}
			return fmt.Errorf("%w: time step %d not accepted (replayed, re-enrolled or locked)", ErrConflict, step)
		}
		return err
	})
	return stored, m.s.wrap("accept totp step", err)
}

func (m mfaStore) BeginTOTPAttempt(ctx context.Context, tenantID, subject string, at, lockUntil time.Time, maxFailures int) (*TOTPEnrollment, error) {
	return m.attempt(ctx, "begin totp attempt", sqlTOTPBegin, tenantID, subject, at, lockUntil, maxFailures)
}

func (m mfaStore) RecordTOTPFailure(ctx context.Context, tenantID, subject string, at, lockUntil time.Time, maxFailures int) (*TOTPEnrollment, error) {
	return m.attempt(ctx, "record totp failure", sqlTOTPFailure, tenantID, subject, at, lockUntil, maxFailures)
}

func (m mfaStore) attempt(ctx context.Context, op, q, tenantID, subject string, at, lockUntil time.Time, maxFailures int) (*TOTPEnrollment, error) {
	if maxFailures <= 0 {
		return nil, fmt.Errorf("%w: maxFailures must be positive", ErrInvalid)
	}
	var stored *TOTPEnrollment
	err := m.s.write(ctx, func(w querier) (err error) {
		stored, err = scanTOTP(w.queryRow(ctx, q, tenantID, subject,
			m.s.drv.timeArg(normTime(at)), m.s.drv.timeArg(normTime(lockUntil)), maxFailures))
		return err
	})
	return stored, m.s.wrap(op, err)
}
