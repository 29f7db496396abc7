-- +goose Up
-- Mirrors migrations/sqlite/00008_proposal_request_sha256.sql: the fingerprint of the
-- request that created a proposal (lower-case hex SHA-256 of its RFC 8785 canonical
-- JSON), kept beside the Idempotency-Key so that a retry with the same key and a
-- different payload is refused (422, IETF httpapi idempotency-key draft) instead of
-- silently answered with the first proposal. '' for proposals created before it.
ALTER TABLE proposals ADD COLUMN request_sha256 TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE proposals DROP COLUMN request_sha256;
