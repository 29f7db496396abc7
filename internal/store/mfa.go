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
	// RecordTOTPFailure counts a wrong code in one statement: Failures+1, and when that
	// reaches maxFailures the enrolment is locked until lockUntil and Failures restarts
	// at 0. Returns the row after the update; ErrNotFound if none.
	RecordTOTPFailure(ctx context.Context, tenantID, subject string, maxFailures int, lockUntil time.Time) (*TOTPEnrollment, error)
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
	sqlTOTPFailure = `UPDATE mfa_totp
	SET failures = CASE WHEN failures + 1 >= $3 THEN 0 ELSE failures + 1 END,
	    locked_until = CASE WHEN failures + 1 >= $3 THEN $4 ELSE locked_until END
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

func (m mfaStore) RecordTOTPFailure(ctx context.Context, tenantID, subject string, maxFailures int, lockUntil time.Time) (*TOTPEnrollment, error) {
	if maxFailures <= 0 {
		return nil, fmt.Errorf("%w: maxFailures must be positive", ErrInvalid)
	}
	var stored *TOTPEnrollment
	err := m.s.write(ctx, func(w querier) (err error) {
		stored, err = scanTOTP(w.queryRow(ctx, sqlTOTPFailure, tenantID, subject, maxFailures, m.s.drv.timeArg(normTime(lockUntil))))
		return err
	})
	return stored, m.s.wrap("record totp failure", err)
}
