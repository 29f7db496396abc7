-- +goose Up
-- Federated negotiations (I.4.3). A negotiation is durable work: its rounds,
-- offers and every signed vote are stored as they happen, so a restarted
-- fabric resumes (or expires) what was RUNNING. Manifests are canonical JSON
-- (RFC 8785) bytes, kept as JSON like the proposals' manifests.

CREATE TABLE negotiations (
    id              TEXT        NOT NULL PRIMARY KEY,
    tenant_id       TEXT        NOT NULL CHECK (tenant_id <> ''),
    proposal_id     TEXT        NOT NULL CHECK (proposal_id <> ''),
    proposal_digest TEXT        NOT NULL,
    state           TEXT        NOT NULL CHECK (state IN ('RUNNING', 'AGREED', 'REJECTED', 'EXPIRED')),
    quorum_rule     TEXT        NOT NULL CHECK (quorum_rule <> ''),
    round           INTEGER     NOT NULL CHECK (round >= 1),
    max_rounds      INTEGER     NOT NULL CHECK (max_rounds >= 1),
    -- The offer of the current round; the proposal's manifest in round 1.
    offer           JSON        NOT NULL,
    -- The agreed manifest; NULL unless state = 'AGREED'.
    final_manifest  JSON,
    reason          TEXT        NOT NULL DEFAULT '',
    -- The voting regions: [{"region","weight","key_id","public_key"}], in order.
    regions         JSON        NOT NULL,
    deadline        TIMESTAMPTZ NOT NULL,
    version         BIGINT      NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    -- Target of the votes foreign key: a vote's negotiation must belong to the same tenant.
    CONSTRAINT negotiations_round_within_max_check CHECK (round <= max_rounds),
    CONSTRAINT negotiations_tenant_id_id_key UNIQUE (tenant_id, id)
);

-- At most one RUNNING negotiation per proposal.
CREATE UNIQUE INDEX negotiations_running_proposal_idx
    ON negotiations (tenant_id, proposal_id) WHERE state = 'RUNNING';
-- Resume after a restart: every RUNNING negotiation, across tenants, by id.
CREATE INDEX negotiations_running_idx ON negotiations (id) WHERE state = 'RUNNING';
-- A proposal's negotiations, newest first.
CREATE INDEX negotiations_tenant_proposal_idx ON negotiations (tenant_id, proposal_id, created_at DESC, id DESC);

CREATE TABLE negotiation_votes (
    negotiation_id TEXT        NOT NULL,
    tenant_id      TEXT        NOT NULL,
    round          INTEGER     NOT NULL CHECK (round >= 1),
    region         TEXT        NOT NULL CHECK (region <> ''),
    verdict        TEXT        NOT NULL CHECK (verdict IN ('ACCEPT', 'REJECT', 'COUNTER', 'ABSTAIN')),
    reason         TEXT        NOT NULL DEFAULT '',
    -- The modified manifest of a COUNTER; NULL otherwise.
    counter        JSON,
    signature      TEXT        NOT NULL,
    key_id         TEXT        NOT NULL,
    cast_at        TIMESTAMPTZ NOT NULL,
    -- One vote per region and round.
    PRIMARY KEY (negotiation_id, round, region),
    CONSTRAINT negotiation_votes_negotiation_fkey FOREIGN KEY (tenant_id, negotiation_id)
        REFERENCES negotiations (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT negotiation_votes_counter_check CHECK ((verdict = 'COUNTER') = (counter IS NOT NULL))
);

-- +goose Down
DROP TABLE negotiation_votes;
DROP TABLE negotiations;
