-- +goose Up
-- See the postgres migration of the same number.
ALTER TABLE proposals ADD COLUMN request_sha256 TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE proposals DROP COLUMN request_sha256;
