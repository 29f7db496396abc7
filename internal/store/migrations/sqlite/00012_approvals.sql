-- +goose Up
-- The hil-gateway's approval requests and their notifications (a transactional outbox).
-- approval_requests: one row per proposal waiting for (or having had) human approval;
-- outcome is '' until resolved_at is set, then APPROVED, DENIED or EXPIRED.
-- reminder_at (NULL: none) is when a reminder is due while the request is open.
CREATE TABLE approval_requests (
    tenant_id        TEXT    NOT NULL CHECK (tenant_id <> ''),
    proposal_id      TEXT    NOT NULL CHECK (proposal_id <> ''),
    impact           TEXT    NOT NULL DEFAULT '',
    summary          TEXT    NOT NULL DEFAULT '',
    approvals_needed INTEGER NOT NULL CHECK (approvals_needed > 0),
    deadline         INTEGER NOT NULL,
    reminder_at      INTEGER,
    created_at       INTEGER NOT NULL,
    resolved_at      INTEGER,
    outcome          TEXT    NOT NULL DEFAULT '' CHECK (outcome IN ('', 'APPROVED', 'DENIED', 'EXPIRED')),
    CHECK ((resolved_at IS NULL) = (outcome = '')),
    PRIMARY KEY (tenant_id, proposal_id)
) STRICT;
CREATE INDEX approval_requests_open ON approval_requests (tenant_id, created_at) WHERE resolved_at IS NULL;
CREATE INDEX approval_requests_open_deadline ON approval_requests (deadline) WHERE resolved_at IS NULL;

-- notification_outbox: one row per (event, channel), written in the transaction of the
-- change it announces and sent by the gateway's deliverer. payload is the notify.Message
-- as a JSON object. A row is due when not_before and next_attempt_at have passed and no
-- deliverer holds a live lease (lease_until); attempts counts claims. sent_at or dead_at
-- (given up, or cancelled with last_error 'resolved') ends it. last_error is the last
-- failure, at most 500 characters, never a secret.
CREATE TABLE notification_outbox (
    seq             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL CHECK (event_id <> ''),
    channel         TEXT    NOT NULL CHECK (channel <> ''),
    tenant_id       TEXT    NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT    NOT NULL CHECK (proposal_id <> ''),
    kind            TEXT    NOT NULL CHECK (kind <> ''),
    payload         BLOB    NOT NULL,
    not_before      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     INTEGER,
    sent_at         INTEGER,
    dead_at         INTEGER,
    last_error      TEXT    NOT NULL DEFAULT '' CHECK (length(last_error) <= 500),
    created_at      INTEGER NOT NULL,
    UNIQUE (event_id, channel)
) STRICT;
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at) WHERE sent_at IS NULL AND dead_at IS NULL;
CREATE INDEX notification_outbox_proposal ON notification_outbox (tenant_id, proposal_id);

-- +goose Down
DROP TABLE notification_outbox;
DROP TABLE approval_requests;
