package store

import (
	"context"
	"time"
)

// sqlProposalWindow reads one range of proposals_tenant_created_idx.
const sqlProposalWindow = `SELECT ` + proposalCols + ` FROM proposals
	WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3
	ORDER BY created_at, id LIMIT $4`

func (ps proposalStore) ListCreated(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]*Proposal, error) {
	limit = listLimit(limit)
	rs, err := ps.s.r.query(ctx, sqlProposalWindow, tenantID,
		ps.s.drv.timeArg(normTime(from)), ps.s.drv.timeArg(normTime(to)), limit)
	if err != nil {
		return nil, ps.s.wrap("list proposals created in a window", err)
	}
	out, err := collect(rs, scanProposal)
	return out, ps.s.wrap("list proposals created in a window", err)
}
