-- +goose Up
-- The tamper-evident audit log (internal/auditlog). Each tenant has its own log: entries
-- numbered from 0 without gaps, hash-chained (prev_hash is the entry_hash of the entry
-- before) and the leaves of an RFC 6962 Merkle tree whose signed checkpoints are stored
-- beside them. Payloads are never stored: only their SHA-256 and a redacted summary.
-- Rows are append-only: the triggers below refuse UPDATE, DELETE and TRUNCATE, and
-- auditlog.Verify detects rows changed behind the triggers' back.

CREATE TABLE audit_entries (
    tenant_id       TEXT        NOT NULL CHECK (tenant_id <> ''),
    idx             BIGINT      NOT NULL CHECK (idx >= 0),
    proposal_id     TEXT        NOT NULL CHECK (proposal_id <> ''),
    event           TEXT        NOT NULL CHECK (event <> ''),
    actor           TEXT        NOT NULL DEFAULT '',
    trace_id        TEXT        NOT NULL DEFAULT '',
    payload_sha256  TEXT        NOT NULL,
    summary         JSON        NOT NULL DEFAULT '{}',
    idempotency_key TEXT        NOT NULL DEFAULT '',
    prev_hash       TEXT        NOT NULL,
    entry_hash      TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, idx)
);

-- GET /audit/{proposal_id}: a proposal's entries in log order.
CREATE INDEX audit_entries_tenant_proposal_idx ON audit_entries (tenant_id, proposal_id, idx);
-- The retry contract: one entry per (tenant, idempotency key), when a key is given.
CREATE UNIQUE INDEX audit_entries_tenant_idempotency_key_idx
    ON audit_entries (tenant_id, idempotency_key) WHERE idempotency_key <> '';

CREATE TABLE audit_checkpoints (
    tenant_id         TEXT        NOT NULL CHECK (tenant_id <> ''),
    size              BIGINT      NOT NULL CHECK (size >= 1),
    root_hash         TEXT        NOT NULL,
    note              TEXT        NOT NULL,
    mldsa65_signature TEXT        NOT NULL,
    mldsa65_key_id    TEXT        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, size)
);

-- +goose StatementBegin
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- +goose Down
DROP TABLE audit_checkpoints;
DROP TABLE audit_entries;
DROP FUNCTION audit_refuse_change();
