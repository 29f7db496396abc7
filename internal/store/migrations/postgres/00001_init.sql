-- +goose Up
-- Documents (manifest, metadata, state) are JSON, not JSONB: JSON keeps the
-- exact canonical (RFC 8785) bytes that the stored SHA-256 hashes cover.

CREATE TABLE proposals (
    id               TEXT        NOT NULL PRIMARY KEY,
    tenant_id        TEXT        NOT NULL CHECK (tenant_id <> ''),
    status           TEXT        NOT NULL CHECK (status <> ''),
    impact           TEXT        NOT NULL DEFAULT '' CHECK (impact IN ('', 'low', 'medium', 'high')),
    dry_run          BOOLEAN     NOT NULL DEFAULT FALSE,
    manifest         JSON        NOT NULL,
    manifest_sha256  TEXT        NOT NULL,
    metadata         JSON        NOT NULL DEFAULT '{}',
    pre_state_sha256 TEXT        NOT NULL DEFAULT '',
    idempotency_key  TEXT        NOT NULL DEFAULT '',
    created_by       TEXT        NOT NULL DEFAULT '',
    trace_id         TEXT        NOT NULL DEFAULT '',
    version          BIGINT      NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    -- Target of the snapshots foreign key: a snapshot's proposal must belong to the same tenant.
    CONSTRAINT proposals_tenant_id_id_key UNIQUE (tenant_id, id)
);

-- The retry contract: one proposal per (tenant, idempotency key), when a key is given.
CREATE UNIQUE INDEX proposals_tenant_idempotency_key_idx
    ON proposals (tenant_id, idempotency_key) WHERE idempotency_key <> '';
-- List: newest first, optionally by status.
CREATE INDEX proposals_tenant_created_idx ON proposals (tenant_id, created_at DESC, id DESC);
CREATE INDEX proposals_tenant_status_created_idx ON proposals (tenant_id, status, created_at DESC, id DESC);

CREATE TABLE snapshots (
    id          TEXT        NOT NULL PRIMARY KEY,
    proposal_id TEXT        NOT NULL,
    tenant_id   TEXT        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('pre', 'post')),
    sha256      TEXT        NOT NULL,
    state       JSON        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT snapshots_proposal_kind_key UNIQUE (proposal_id, kind),
    CONSTRAINT snapshots_proposal_fkey FOREIGN KEY (tenant_id, proposal_id)
        REFERENCES proposals (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX snapshots_tenant_proposal_created_idx ON snapshots (tenant_id, proposal_id, created_at, id);

CREATE TABLE world_states (
    tenant_id  TEXT        NOT NULL CHECK (tenant_id <> ''),
    region     TEXT        NOT NULL,
    target     TEXT        NOT NULL CHECK (target <> ''),
    state      JSON        NOT NULL,
    version    BIGINT      NOT NULL CHECK (version >= 1),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, region, target)
);

-- +goose Down
DROP TABLE world_states;
DROP TABLE snapshots;
DROP TABLE proposals;
