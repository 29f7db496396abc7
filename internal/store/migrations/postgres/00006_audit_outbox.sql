-- +goose Up
-- Mirrors migrations/sqlite/00006_audit_outbox.sql: audit events waiting for delivery
-- to the decision auditor (a transactional outbox). seq is the delivery order.
CREATE TABLE audit_outbox (
    seq             BIGSERIAL   PRIMARY KEY,
    tenant_id       TEXT        NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT        NOT NULL CHECK (proposal_id <> ''),
    kind            TEXT        NOT NULL CHECK (kind IN ('entry', 'snapshot')),
    event           TEXT        NOT NULL CHECK (event <> ''),
    payload         JSON        NOT NULL,
    idempotency_key TEXT        NOT NULL CHECK (idempotency_key <> ''),
    actor           TEXT        NOT NULL DEFAULT '',
    trace_id        TEXT        NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE audit_outbox;
