-- +goose Up
-- See the postgres migration of the same number.
ALTER TABLE proposals ADD COLUMN consensus_bundle TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE proposals DROP COLUMN consensus_bundle;
