-- +goose Up
-- Mirrors migrations/sqlite/00007_proposal_consensus_bundle.sql: a proposal's signed
-- consensus bundle (P2) in its own column, as the exact bytes the coordinator wrote
-- (the API form of types.v1.ConsensusBundle, whose "bundle" member is the signed
-- RFC 8785 canonical JSON). It is written once, when the regions agree; '' means none.
-- TEXT, not JSON/JSONB: the bytes must come back as written.
ALTER TABLE proposals ADD COLUMN consensus_bundle TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE proposals DROP COLUMN consensus_bundle;
