-- +goose Up
-- Mirrors migrations/sqlite/00015_event_outbox.sql: lifecycle events waiting for
-- publication to Kafka (a transactional outbox), claimed by the coordinator's event relay
-- with leases, only the oldest of a proposal at a time, deleted once acknowledged.
CREATE TABLE event_outbox (
    seq             BIGSERIAL   PRIMARY KEY,
    event_id        TEXT        NOT NULL UNIQUE CHECK (event_id <> ''),
    tenant_id       TEXT        NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT        NOT NULL CHECK (proposal_id <> ''),
    payload         BYTEA       NOT NULL CHECK (octet_length(payload) <= 4096),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT        NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ,
    last_error      TEXT        NOT NULL DEFAULT '' CHECK (char_length(last_error) <= 500),
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX event_outbox_proposal ON event_outbox (tenant_id, proposal_id, seq);

-- +goose Down
DROP TABLE event_outbox;
