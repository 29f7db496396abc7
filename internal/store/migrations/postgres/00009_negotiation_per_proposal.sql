-- +goose Up
-- One negotiation per proposal, ever (StartNegotiation is idempotent per tenant and
-- proposal: a retried start returns the existing negotiation, running or ended). The
-- partial index allowed a second negotiation once the first had ended; a proposal
-- negotiated twice before this migration keeps its newest negotiation (the one its
-- coordinator followed) and loses the older ones with their votes.
DELETE FROM negotiation_votes v USING negotiations n
WHERE v.negotiation_id = n.id AND EXISTS (
    SELECT 1 FROM negotiations m
    WHERE m.tenant_id = n.tenant_id AND m.proposal_id = n.proposal_id
      AND (m.created_at, m.id) > (n.created_at, n.id));
DELETE FROM negotiations n WHERE EXISTS (
    SELECT 1 FROM negotiations m
    WHERE m.tenant_id = n.tenant_id AND m.proposal_id = n.proposal_id
      AND (m.created_at, m.id) > (n.created_at, n.id));
DROP INDEX negotiations_running_proposal_idx;
CREATE UNIQUE INDEX negotiations_proposal_key ON negotiations (tenant_id, proposal_id);

-- +goose Down
DROP INDEX negotiations_proposal_key;
CREATE UNIQUE INDEX negotiations_running_proposal_idx
    ON negotiations (tenant_id, proposal_id) WHERE state = 'RUNNING';
