-- +goose Up
-- Mirrors migrations/postgres/00001_init.sql. STRICT tables; times are INTEGER
-- unix microseconds (UTC); booleans are 0/1; JSON documents are BLOBs holding
-- the exact canonical bytes.

CREATE TABLE proposals (
    id               TEXT    NOT NULL PRIMARY KEY,
    tenant_id        TEXT    NOT NULL CHECK (tenant_id <> ''),
    status           TEXT    NOT NULL CHECK (status <> ''),
    impact           TEXT    NOT NULL DEFAULT '' CHECK (impact IN ('', 'low', 'medium', 'high')),
    dry_run          INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    manifest         BLOB    NOT NULL,
    manifest_sha256  TEXT    NOT NULL,
    metadata         BLOB    NOT NULL DEFAULT X'7B7D', -- '{}'
    pre_state_sha256 TEXT    NOT NULL DEFAULT '',
    idempotency_key  TEXT    NOT NULL DEFAULT '',
    created_by       TEXT    NOT NULL DEFAULT '',
    trace_id         TEXT    NOT NULL DEFAULT '',
    version          INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    CONSTRAINT proposals_tenant_id_id_key UNIQUE (tenant_id, id)
) STRICT;

CREATE UNIQUE INDEX proposals_tenant_idempotency_key_idx
    ON proposals (tenant_id, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX proposals_tenant_created_idx ON proposals (tenant_id, created_at DESC, id DESC);
CREATE INDEX proposals_tenant_status_created_idx ON proposals (tenant_id, status, created_at DESC, id DESC);

CREATE TABLE snapshots (
    id          TEXT    NOT NULL PRIMARY KEY,
    proposal_id TEXT    NOT NULL,
    tenant_id   TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('pre', 'post')),
    sha256      TEXT    NOT NULL,
    state       BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT snapshots_proposal_kind_key UNIQUE (proposal_id, kind),
    CONSTRAINT snapshots_proposal_fkey FOREIGN KEY (tenant_id, proposal_id)
        REFERENCES proposals (tenant_id, id) ON DELETE CASCADE
) STRICT;

CREATE INDEX snapshots_tenant_proposal_created_idx ON snapshots (tenant_id, proposal_id, created_at, id);

CREATE TABLE world_states (
    tenant_id  TEXT    NOT NULL CHECK (tenant_id <> ''),
    region     TEXT    NOT NULL,
    target     TEXT    NOT NULL CHECK (target <> ''),
    state      BLOB    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, region, target)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE world_states;
DROP TABLE snapshots;
DROP TABLE proposals;
