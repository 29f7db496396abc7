-- +goose Up
-- Audit events waiting for delivery to the decision auditor (a transactional outbox):
-- the coordinator writes each event in the same transaction as the change it records,
-- so an event is never lost when the auditor is unreachable; a relay delivers it (the
-- auditor deduplicates by idempotency_key) and deletes it. seq is the delivery order.
CREATE TABLE audit_outbox (
    seq             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT    NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT    NOT NULL CHECK (proposal_id <> ''),
    kind            TEXT    NOT NULL CHECK (kind IN ('entry', 'snapshot')),
    event           TEXT    NOT NULL CHECK (event <> ''),
    payload         BLOB    NOT NULL,
    idempotency_key TEXT    NOT NULL CHECK (idempotency_key <> ''),
    actor           TEXT    NOT NULL DEFAULT '', -- the principal whose request caused the event
    trace_id        TEXT    NOT NULL DEFAULT '', -- that request's trace id
    created_at      INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE audit_outbox;
