package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// WebAuthn session kinds.
const (
	WebAuthnRegistration = "registration"
	WebAuthnApproval     = "approval"
)

// WebAuthnCredential is one public-key credential a subject registered in one tenant
// (the hil-gateway's WebAuthn second factor).
type WebAuthnCredential struct {
	TenantID  string // required
	Subject   string // required: the token's subject
	ID        []byte // required: the credential ID, unique in the tenant
	PublicKey []byte // required: the credential public key (COSE_Key)
	// SignCount is the last signature counter accepted (0: the authenticator keeps none).
	SignCount uint32
	AAGUID    []byte // the authenticator model (may be all zero)
	// Flags are the authenticator data flags as registered (and updated by
	// AdvanceWebAuthnSignCount); the BE bit must never change.
	Flags             uint8
	AttestationFormat string
	CreatedAt         time.Time // UTC; store clock when zero
	LastUsedAt        time.Time // zero: never used
}

// WebAuthnSession is a WebAuthn ceremony begun and not yet finished, keyed by its
// challenge. It is used at most once: TakeWebAuthnSession deletes it.
type WebAuthnSession struct {
	TenantID  string // required
	Challenge string // required: the challenge as sent to the client (base64url)
	Subject   string // required
	Kind      string // required: WebAuthnRegistration or WebAuthnApproval
	// ManifestSHA256 is the manifest digest an approval's challenge is bound to
	// (required for an approval, empty for a registration).
	ManifestSHA256 string
	Data           []byte    // required: the ceremony's session data (JSON), opaque to the store
	CreatedAt      time.Time // UTC; store clock when zero
	ExpiresAt      time.Time // required
}

// WebAuthnStore persists the hil-gateway's WebAuthn credentials and ceremony sessions.
// All methods are tenant-scoped: another tenant's or subject's rows are ErrNotFound.
type WebAuthnStore interface {
	// PutWebAuthnCredential stores a newly registered credential; ErrConflict when the
	// tenant already has a credential with that ID (whoever registered it). LastUsedAt
	// is ignored. Returns the stored row.
	PutWebAuthnCredential(ctx context.Context, c *WebAuthnCredential) (*WebAuthnCredential, error)
	// ListWebAuthnCredentials returns the subject's credentials, oldest first (an
	// empty list when none).
	ListWebAuthnCredentials(ctx context.Context, tenantID, subject string) ([]*WebAuthnCredential, error)
	// AdvanceWebAuthnSignCount records an accepted assertion in one compare-and-swap
	// statement: it sets SignCount = count, Flags = flags and LastUsedAt = at only if
	// count is greater than the stored counter, or both are 0 (an authenticator
	// without a counter). Otherwise ErrConflict (a counter that did not increase: a
	// cloned authenticator, or a concurrent assertion that won); ErrNotFound when the
	// subject has no such credential.
	AdvanceWebAuthnSignCount(ctx context.Context, tenantID, subject string, credentialID []byte, count uint32, flags uint8, at time.Time) (*WebAuthnCredential, error)
	// PutWebAuthnSession stores a session, first deleting the subject's sessions that
	// expired at s.CreatedAt; ErrConflict if the challenge is already stored.
	PutWebAuthnSession(ctx context.Context, s *WebAuthnSession) error
	// TakeWebAuthnSession deletes the subject's session with that challenge and
	// returns it, in one statement, so of concurrent calls at most one gets it. An
	// expired session is returned too (the caller refuses it). ErrNotFound if none.
	TakeWebAuthnSession(ctx context.Context, tenantID, subject, challenge string) (*WebAuthnSession, error)
}

func (s *sqlStore) WebAuthn() WebAuthnStore { return webAuthnStore{s} }

const (
	webAuthnCredCols    = `tenant_id, subject, credential_id, public_key, sign_count, aaguid, flags, attestation_format, created_at, last_used_at`
	webAuthnSessionCols = `tenant_id, challenge, subject, kind, manifest_sha256, data, created_at, expires_at`
)

const (
	sqlWebAuthnCredPut = `INSERT INTO webauthn_credentials (` + webAuthnCredCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) RETURNING ` + webAuthnCredCols
	sqlWebAuthnCredList = `SELECT ` + webAuthnCredCols + ` FROM webauthn_credentials
	WHERE tenant_id = $1 AND subject = $2 ORDER BY created_at, credential_id`
	sqlWebAuthnCredGet = `SELECT ` + webAuthnCredCols + ` FROM webauthn_credentials
	WHERE tenant_id = $1 AND subject = $2 AND credential_id = $3`
	sqlWebAuthnCredAdvance = `UPDATE webauthn_credentials SET sign_count = $4, flags = $5, last_used_at = $6
	WHERE tenant_id = $1 AND subject = $2 AND credential_id = $3
	  AND (sign_count < $4 OR (sign_count = 0 AND $4 = 0))
	RETURNING ` + webAuthnCredCols
	sqlWebAuthnSessionPurge = `DELETE FROM webauthn_sessions WHERE tenant_id = $1 AND subject = $2 AND expires_at <= $3`
	sqlWebAuthnSessionPut   = `INSERT INTO webauthn_sessions (` + webAuthnSessionCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	sqlWebAuthnSessionTake  = `DELETE FROM webauthn_sessions WHERE tenant_id = $1 AND subject = $2 AND challenge = $3
	RETURNING ` + webAuthnSessionCols
)

func scanWebAuthnCredential(r row) (*WebAuthnCredential, error) {
	var c WebAuthnCredential
	var count, flags int64
	err := r.Scan(&c.TenantID, &c.Subject, &c.ID, &c.PublicKey, &count, &c.AAGUID, &flags, &c.AttestationFormat,
		timeCol{&c.CreatedAt}, nullTimeCol{&c.LastUsedAt})
	if err != nil {
		return nil, err
	}
	c.SignCount, c.Flags = uint32(count), uint8(flags) //nolint:gosec // stored from a uint32 and a uint8
	if c.AAGUID == nil {
		c.AAGUID = []byte{}
	}
	return &c, nil
}

func scanWebAuthnSession(r row) (*WebAuthnSession, error) {
	var s WebAuthnSession
	err := r.Scan(&s.TenantID, &s.Challenge, &s.Subject, &s.Kind, &s.ManifestSHA256, &s.Data,
		timeCol{&s.CreatedAt}, timeCol{&s.ExpiresAt})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

type webAuthnStore struct{ s *sqlStore }

func (ws webAuthnStore) PutWebAuthnCredential(ctx context.Context, c *WebAuthnCredential) (*WebAuthnCredential, error) {
	if c == nil || c.TenantID == "" || c.Subject == "" || len(c.ID) == 0 || len(c.PublicKey) == 0 {
		return nil, fmt.Errorf("%w: webauthn credential needs a tenant, a subject, an ID and a public key", ErrInvalid)
	}
	created := normTime(c.CreatedAt)
	if c.CreatedAt.IsZero() {
		created = now()
	}
	aaguid := c.AAGUID
	if aaguid == nil {
		aaguid = []byte{}
	}
	var stored *WebAuthnCredential
	err := ws.s.write(ctx, func(w querier) (err error) {
		stored, err = scanWebAuthnCredential(w.queryRow(ctx, sqlWebAuthnCredPut, c.TenantID, c.Subject, c.ID, c.PublicKey,
			int64(c.SignCount), aaguid, int64(c.Flags), c.AttestationFormat, ws.s.drv.timeArg(created)))
		return err
	})
	return stored, ws.s.wrap("put webauthn credential", err)
}

func (ws webAuthnStore) ListWebAuthnCredentials(ctx context.Context, tenantID, subject string) ([]*WebAuthnCredential, error) {
	rs, err := ws.s.r.query(ctx, sqlWebAuthnCredList, tenantID, subject)
	if err != nil {
		return nil, ws.s.wrap("list webauthn credentials", err)
	}
	out, err := collect(rs, scanWebAuthnCredential)
	return out, ws.s.wrap("list webauthn credentials", err)
}

func (ws webAuthnStore) AdvanceWebAuthnSignCount(ctx context.Context, tenantID, subject string, credentialID []byte, count uint32, flags uint8, at time.Time) (*WebAuthnCredential, error) {
	var stored *WebAuthnCredential
	err := ws.s.write(ctx, func(w querier) (err error) {
		stored, err = scanWebAuthnCredential(w.queryRow(ctx, sqlWebAuthnCredAdvance, tenantID, subject, credentialID,
			int64(count), int64(flags), ws.s.drv.timeArg(normTime(at))))
		if errors.Is(err, sql.ErrNoRows) {
			// Tell a missing credential from a counter that did not increase.
			if _, gerr := scanWebAuthnCredential(w.queryRow(ctx, sqlWebAuthnCredGet, tenantID, subject, credentialID)); gerr != nil {
				return gerr
			}
			return fmt.Errorf("%w: signature counter %d did not increase", ErrConflict, count)
		}
		return err
	})
	return stored, ws.s.wrap("advance webauthn sign count", err)
}

func (ws webAuthnStore) PutWebAuthnSession(ctx context.Context, s *WebAuthnSession) error {
	if s == nil || s.TenantID == "" || s.Challenge == "" || s.Subject == "" || len(s.Data) == 0 || s.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: webauthn session needs a tenant, a challenge, a subject, data and an expiry", ErrInvalid)
	}
	switch {
	case s.Kind == WebAuthnRegistration && s.ManifestSHA256 == "":
	case s.Kind == WebAuthnApproval && s.ManifestSHA256 != "":
	default:
		return fmt.Errorf("%w: webauthn session kind %q with manifest digest %q", ErrInvalid, s.Kind, s.ManifestSHA256)
	}
	created := normTime(s.CreatedAt)
	if s.CreatedAt.IsZero() {
		created = now()
	}
	err := ws.s.write(ctx, func(w querier) error {
		if _, err := w.exec(ctx, sqlWebAuthnSessionPurge, s.TenantID, s.Subject, ws.s.drv.timeArg(created)); err != nil {
			return err
		}
		_, err := w.exec(ctx, sqlWebAuthnSessionPut, s.TenantID, s.Challenge, s.Subject, s.Kind, s.ManifestSHA256, s.Data,
			ws.s.drv.timeArg(created), ws.s.drv.timeArg(normTime(s.ExpiresAt)))
		return err
	})
	return ws.s.wrap("put webauthn session", err)
}

func (ws webAuthnStore) TakeWebAuthnSession(ctx context.Context, tenantID, subject, challenge string) (*WebAuthnSession, error) {
	var taken *WebAuthnSession
	err := ws.s.write(ctx, func(w querier) (err error) {
		taken, err = scanWebAuthnSession(w.queryRow(ctx, sqlWebAuthnSessionTake, tenantID, subject, challenge))
		return err
	})
	return taken, ws.s.wrap("take webauthn session", err)
}
