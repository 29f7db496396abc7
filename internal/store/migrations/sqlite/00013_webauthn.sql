-- +goose Up
-- The hil-gateway's WebAuthn second factor (services/hil-gateway/hil/webauthn.go).
-- webauthn_credentials: the public-key credentials registered per (tenant, subject).
-- credential_id is the authenticator's credential ID (unique in a tenant), public_key
-- the COSE_Key, sign_count the last signature counter accepted (it must increase, so a
-- cloned authenticator is refused), aaguid the authenticator model, flags the
-- authenticator data flags (BE must never change) and last_used_at (NULL: never used)
-- the last accepted assertion.
CREATE TABLE webauthn_credentials (
    tenant_id          TEXT    NOT NULL CHECK (tenant_id <> ''),
    subject            TEXT    NOT NULL CHECK (subject <> ''),
    credential_id      BLOB    NOT NULL CHECK (length(credential_id) > 0),
    public_key         BLOB    NOT NULL CHECK (length(public_key) > 0),
    sign_count         INTEGER NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    aaguid             BLOB    NOT NULL,
    flags              INTEGER NOT NULL DEFAULT 0,
    attestation_format TEXT    NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER,
    PRIMARY KEY (tenant_id, credential_id)
) STRICT;
CREATE INDEX webauthn_credentials_subject ON webauthn_credentials (tenant_id, subject);

-- webauthn_sessions: a ceremony begun and not yet finished, keyed by its challenge
-- (base64url). kind is 'registration' or 'approval'; an approval's challenge is bound to
-- manifest_sha256 ('' for a registration). data is the ceremony's session as JSON. A
-- session is used at most once (deleted when taken) and refused after expires_at.
CREATE TABLE webauthn_sessions (
    tenant_id       TEXT    NOT NULL CHECK (tenant_id <> ''),
    challenge       TEXT    NOT NULL CHECK (challenge <> ''),
    subject         TEXT    NOT NULL CHECK (subject <> ''),
    kind            TEXT    NOT NULL CHECK (kind IN ('registration', 'approval')),
    manifest_sha256 TEXT    NOT NULL DEFAULT '',
    data            BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, challenge)
) STRICT;
CREATE INDEX webauthn_sessions_subject ON webauthn_sessions (tenant_id, subject, expires_at);

-- +goose Down
DROP TABLE webauthn_sessions;
DROP TABLE webauthn_credentials;
