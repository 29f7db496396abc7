-- +goose Up
-- The hil-gateway's TOTP second factor (internal/mfa): one enrolment per (tenant,
-- subject). secret is the TOTP secret encrypted by internal/mfa (AES-GCM under a key the
-- store never sees); the store holds only ciphertext. last_step is the last accepted RFC
-- 6238 time step (0: none), so a step is accepted at most once; failures counts wrong
-- codes since the last success or lock, and locked_until (NULL: not locked) refuses every
-- code until it has passed.
CREATE TABLE mfa_totp (
    tenant_id    TEXT    NOT NULL CHECK (tenant_id <> ''),
    subject      TEXT    NOT NULL CHECK (subject <> ''),
    secret       BLOB    NOT NULL CHECK (length(secret) > 0),
    created_at   INTEGER NOT NULL,
    last_step    INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    PRIMARY KEY (tenant_id, subject)
) STRICT;

-- +goose Down
DROP TABLE mfa_totp;
