-- +goose Up
-- The coordinator's lifecycle engine (services/decision-coordinator/coordinator/engine.go)
-- leases the proposals it is moving: lease_owner names the coordinator process and
-- lease_until ends the lease (NULL: never leased). A proposal in one of the engine's
-- states whose lease has ended is claimed by any coordinator; the partial index keeps
-- that claim a short range scan whatever the size of the table.
ALTER TABLE proposals ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE proposals ADD COLUMN lease_until INTEGER;
CREATE INDEX proposals_engine_idx ON proposals (created_at)
    WHERE status IN ('SUBMITTED', 'NEGOTIATING', 'AGREED');

-- +goose Down
DROP INDEX proposals_engine_idx;
ALTER TABLE proposals DROP COLUMN lease_until;
ALTER TABLE proposals DROP COLUMN lease_owner;
