-- +goose Up
-- Mirrors migrations/sqlite/00012_approvals.sql: the hil-gateway's approval requests
-- (outcome '' until resolved: APPROVED, DENIED or EXPIRED) and their notifications, a
-- transactional outbox with one row per (event, channel), sent by the gateway's
-- deliverer under a lease; sent_at or dead_at ends a row. last_error is at most 500
-- characters and never a secret.
CREATE TABLE approval_requests (
    tenant_id        TEXT        NOT NULL CHECK (tenant_id <> ''),
    proposal_id      TEXT        NOT NULL CHECK (proposal_id <> ''),
    impact           TEXT        NOT NULL DEFAULT '',
    summary          TEXT        NOT NULL DEFAULT '',
    approvals_needed INTEGER     NOT NULL CHECK (approvals_needed > 0),
    deadline         TIMESTAMPTZ NOT NULL,
    reminder_at      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    resolved_at      TIMESTAMPTZ,
    outcome          TEXT        NOT NULL DEFAULT '' CHECK (outcome IN ('', 'APPROVED', 'DENIED', 'EXPIRED')),
    CHECK ((resolved_at IS NULL) = (outcome = '')),
    PRIMARY KEY (tenant_id, proposal_id)
);
CREATE INDEX approval_requests_open ON approval_requests (tenant_id, created_at) WHERE resolved_at IS NULL;
CREATE INDEX approval_requests_open_deadline ON approval_requests (deadline) WHERE resolved_at IS NULL;

CREATE TABLE notification_outbox (
    seq             BIGSERIAL   PRIMARY KEY,
    event_id        TEXT        NOT NULL CHECK (event_id <> ''),
    channel         TEXT        NOT NULL CHECK (channel <> ''),
    tenant_id       TEXT        NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT        NOT NULL CHECK (proposal_id <> ''),
    kind            TEXT        NOT NULL CHECK (kind <> ''),
    payload         JSON        NOT NULL,
    not_before      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT        NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    dead_at         TIMESTAMPTZ,
    last_error      TEXT        NOT NULL DEFAULT '' CHECK (char_length(last_error) <= 500),
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (event_id, channel)
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at) WHERE sent_at IS NULL AND dead_at IS NULL;
CREATE INDEX notification_outbox_proposal ON notification_outbox (tenant_id, proposal_id);

-- +goose Down
DROP TABLE notification_outbox;
DROP TABLE approval_requests;
