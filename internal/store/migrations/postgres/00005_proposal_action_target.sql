-- +goose Up
-- Mirrors migrations/sqlite/00005_proposal_action_target.sql: the manifest's action and
-- target as columns, so the history of similar decisions is an index range. The store
-- fills them from the manifest on create; existing rows are back-filled.
ALTER TABLE proposals ADD COLUMN action TEXT NOT NULL DEFAULT '';
ALTER TABLE proposals ADD COLUMN target TEXT NOT NULL DEFAULT '';
UPDATE proposals SET
    action = coalesce(manifest ->> 'action', ''),
    target = coalesce(manifest ->> 'target', '')
WHERE json_typeof(manifest) = 'object';
CREATE INDEX proposals_tenant_action_status_idx
    ON proposals (tenant_id, action, status, created_at);
CREATE INDEX proposals_tenant_action_target_idx
    ON proposals (tenant_id, action, target, status, created_at);

-- +goose Down
DROP INDEX proposals_tenant_action_target_idx;
DROP INDEX proposals_tenant_action_status_idx;
ALTER TABLE proposals DROP COLUMN target;
ALTER TABLE proposals DROP COLUMN action;
