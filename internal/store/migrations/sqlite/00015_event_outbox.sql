-- +goose Up
-- Lifecycle events waiting for publication to Kafka (a transactional outbox): the
-- coordinator writes one row per committed state transition in the transaction of that
-- transition; its event relay claims rows with a lease (lease_owner, lease_until), so two
-- relays never hold one row, publishes them and deletes each once the broker
-- acknowledged it. Only the oldest row of a proposal can be claimed, so a proposal's
-- events are published one after the other, in seq order. payload is the serialized
-- decisionfabric.events.v1.LifecycleEvent (at most 4096 bytes). attempts counts claims,
-- next_attempt_at delays a retry, last_error is the last failure (at most 500
-- characters, never a secret).
CREATE TABLE event_outbox (
    seq             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE CHECK (event_id <> ''),
    tenant_id       TEXT    NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT    NOT NULL CHECK (proposal_id <> ''),
    payload         BLOB    NOT NULL CHECK (length(payload) <= 4096),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT    NOT NULL DEFAULT '',
    lease_until     INTEGER,
    last_error      TEXT    NOT NULL DEFAULT '' CHECK (length(last_error) <= 500),
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX event_outbox_proposal ON event_outbox (tenant_id, proposal_id, seq);

-- +goose Down
DROP TABLE event_outbox;
