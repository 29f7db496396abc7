-- +goose Up
-- Mirrors migrations/postgres/00004_audit_log.sql (STRICT tables; times are INTEGER
-- unix microseconds; JSON documents are BLOBs of canonical bytes). The triggers make
-- the audit tables append-only: UPDATE and DELETE abort.

CREATE TABLE audit_entries (
    tenant_id       TEXT    NOT NULL CHECK (tenant_id <> ''),
    idx             INTEGER NOT NULL CHECK (idx >= 0),
    proposal_id     TEXT    NOT NULL CHECK (proposal_id <> ''),
    event           TEXT    NOT NULL CHECK (event <> ''),
    actor           TEXT    NOT NULL DEFAULT '',
    trace_id        TEXT    NOT NULL DEFAULT '',
    payload_sha256  TEXT    NOT NULL,
    summary         BLOB    NOT NULL DEFAULT X'7B7D', -- '{}'
    idempotency_key TEXT    NOT NULL DEFAULT '',
    prev_hash       TEXT    NOT NULL,
    entry_hash      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, idx)
) STRICT;

CREATE INDEX audit_entries_tenant_proposal_idx ON audit_entries (tenant_id, proposal_id, idx);
CREATE UNIQUE INDEX audit_entries_tenant_idempotency_key_idx
    ON audit_entries (tenant_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE audit_checkpoints (
    tenant_id         TEXT    NOT NULL CHECK (tenant_id <> ''),
    size              INTEGER NOT NULL CHECK (size >= 1),
    root_hash         TEXT    NOT NULL,
    note              TEXT    NOT NULL,
    mldsa65_signature TEXT    NOT NULL,
    mldsa65_key_id    TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, size)
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_entries refused');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_entries refused');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: UPDATE on audit_checkpoints refused');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only: DELETE on audit_checkpoints refused');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_checkpoints;
DROP TABLE audit_entries;
