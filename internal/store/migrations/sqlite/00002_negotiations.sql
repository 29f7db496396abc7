-- +goose Up
-- Mirrors migrations/postgres/00002_negotiations.sql (STRICT tables; times are
-- INTEGER unix microseconds; JSON documents are BLOBs of canonical bytes).

CREATE TABLE negotiations (
    id              TEXT    NOT NULL PRIMARY KEY,
    tenant_id       TEXT    NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT    NOT NULL CHECK (proposal_id <> ''),
    proposal_digest TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('RUNNING', 'AGREED', 'REJECTED', 'EXPIRED')),
    quorum_rule     TEXT    NOT NULL CHECK (quorum_rule <> ''),
    round           INTEGER NOT NULL CHECK (round >= 1),
    max_rounds      INTEGER NOT NULL CHECK (max_rounds >= 1),
    offer           BLOB    NOT NULL,
    final_manifest  BLOB,
    reason          TEXT    NOT NULL DEFAULT '',
    regions         BLOB    NOT NULL,
    deadline        INTEGER NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CONSTRAINT negotiations_round_within_max_check CHECK (round <= max_rounds),
    CONSTRAINT negotiations_tenant_id_id_key UNIQUE (tenant_id, id)
) STRICT;

CREATE UNIQUE INDEX negotiations_running_proposal_idx
    ON negotiations (tenant_id, proposal_id) WHERE state = 'RUNNING';
CREATE INDEX negotiations_running_idx ON negotiations (id) WHERE state = 'RUNNING';
CREATE INDEX negotiations_tenant_proposal_idx ON negotiations (tenant_id, proposal_id, created_at DESC, id DESC);

CREATE TABLE negotiation_votes (
    negotiation_id TEXT    NOT NULL,
    tenant_id      TEXT    NOT NULL,
    round          INTEGER NOT NULL CHECK (round >= 1),
    region         TEXT    NOT NULL CHECK (region <> ''),
    verdict        TEXT    NOT NULL CHECK (verdict IN ('ACCEPT', 'REJECT', 'COUNTER', 'ABSTAIN')),
    reason         TEXT    NOT NULL DEFAULT '',
    counter        BLOB,
    signature      TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    cast_at        INTEGER NOT NULL,
    PRIMARY KEY (negotiation_id, round, region),
    CONSTRAINT negotiation_votes_negotiation_fkey FOREIGN KEY (tenant_id, negotiation_id)
        REFERENCES negotiations (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT negotiation_votes_counter_check CHECK ((verdict = 'COUNTER') = (counter IS NOT NULL))
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE negotiation_votes;
DROP TABLE negotiations;
