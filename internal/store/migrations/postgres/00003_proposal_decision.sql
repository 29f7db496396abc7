-- +goose Up
-- The decision record of a proposal: negotiation outcome, agreed manifest, policy
-- verdict, score, dry run and approvers, as one canonical JSON document owned by the
-- coordinator; and the post-state hash once enacted (P7).
ALTER TABLE proposals ADD COLUMN decision JSON NOT NULL DEFAULT '{}';
ALTER TABLE proposals ADD COLUMN post_state_sha256 TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE proposals DROP COLUMN post_state_sha256;
ALTER TABLE proposals DROP COLUMN decision;
