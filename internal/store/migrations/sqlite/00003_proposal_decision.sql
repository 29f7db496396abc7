-- +goose Up
-- See the postgres migration of the same number.
ALTER TABLE proposals ADD COLUMN decision BLOB NOT NULL DEFAULT X'7B7D'; -- '{}'
ALTER TABLE proposals ADD COLUMN post_state_sha256 TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE proposals DROP COLUMN post_state_sha256;
ALTER TABLE proposals DROP COLUMN decision;
