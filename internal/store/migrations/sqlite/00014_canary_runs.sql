-- +goose Up
-- The sim-canary's runs: whole-chain dry runs and canary rollouts, one row per run. run
-- is the run's record (steps, scorecard; a JSON object the sim-canary writes), state its
-- current state for queries, version the compare-and-swap counter of Update.
CREATE TABLE canary_runs (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant_id   TEXT    NOT NULL CHECK (tenant_id <> ''),
    proposal_id TEXT    NOT NULL CHECK (proposal_id <> ''),
    state       TEXT    NOT NULL CHECK (state <> ''),
    dry_run     INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1)),
    created_by  TEXT    NOT NULL DEFAULT '',
    run         TEXT    NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX canary_runs_tenant_proposal ON canary_runs (tenant_id, proposal_id, created_at);
-- The rollouts a restarted sim-canary resumes.
CREATE INDEX canary_runs_running ON canary_runs (created_at) WHERE state = 'RUNNING';

-- +goose Down
DROP TABLE canary_runs;
