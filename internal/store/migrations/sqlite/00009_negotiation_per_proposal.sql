-- +goose Up
-- See the postgres migration of the same number.
DELETE FROM negotiation_votes WHERE negotiation_id IN (
    SELECT n.id FROM negotiations n WHERE EXISTS (
        SELECT 1 FROM negotiations m
        WHERE m.tenant_id = n.tenant_id AND m.proposal_id = n.proposal_id
          AND (m.created_at > n.created_at OR (m.created_at = n.created_at AND m.id > n.id))));
DELETE FROM negotiations WHERE id IN (
    SELECT n.id FROM negotiations n WHERE EXISTS (
        SELECT 1 FROM negotiations m
        WHERE m.tenant_id = n.tenant_id AND m.proposal_id = n.proposal_id
          AND (m.created_at > n.created_at OR (m.created_at = n.created_at AND m.id > n.id))));
DROP INDEX negotiations_running_proposal_idx;
CREATE UNIQUE INDEX negotiations_proposal_key ON negotiations (tenant_id, proposal_id);

-- +goose Down
DROP INDEX negotiations_proposal_key;
CREATE UNIQUE INDEX negotiations_running_proposal_idx
    ON negotiations (tenant_id, proposal_id) WHERE state = 'RUNNING';
