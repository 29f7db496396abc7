-- +goose Up
-- The manifest's action and target as columns, so the history of similar decisions
-- (the confidence scorer's evidence) is an index range, not a scan of every manifest.
-- The store fills them from the manifest on create; existing rows are back-filled.
ALTER TABLE proposals ADD COLUMN action TEXT NOT NULL DEFAULT '';
ALTER TABLE proposals ADD COLUMN target TEXT NOT NULL DEFAULT '';
UPDATE proposals SET
    action = coalesce(json_extract(CAST(manifest AS TEXT), '$.action'), ''),
    target = coalesce(json_extract(CAST(manifest AS TEXT), '$.target'), '')
WHERE json_valid(CAST(manifest AS TEXT));
CREATE INDEX proposals_tenant_action_status_idx
    ON proposals (tenant_id, action, status, created_at);
CREATE INDEX proposals_tenant_action_target_idx
    ON proposals (tenant_id, action, target, status, created_at);

-- +goose Down
DROP INDEX proposals_tenant_action_target_idx;
DROP INDEX proposals_tenant_action_status_idx;
ALTER TABLE proposals DROP COLUMN target;
ALTER TABLE proposals DROP COLUMN action;
