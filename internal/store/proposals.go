package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

const proposalCols = `id, tenant_id, status, impact, dry_run, manifest, manifest_sha256, metadata,
	pre_state_sha256, idempotency_key, created_by, trace_id, version, created_at, updated_at,
	decision, post_state_sha256, action, target`

const (
	// The conflict target names the partial unique index, so only an
	// idempotency-key collision is absorbed; a duplicate id still fails.
	sqlProposalInsert = `INSERT INTO proposals (` + proposalCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
	ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key <> '' DO NOTHING
	RETURNING ` + proposalCols
	sqlProposalByKey = `SELECT ` + proposalCols + ` FROM proposals
	WHERE tenant_id = $1 AND idempotency_key = $2 AND idempotency_key <> ''`
	sqlProposalGet    = `SELECT ` + proposalCols + ` FROM proposals WHERE tenant_id = $1 AND id = $2`
	sqlProposalExists = `SELECT 1 FROM proposals WHERE tenant_id = $1 AND id = $2`
	sqlProposalList   = `SELECT ` + proposalCols + ` FROM proposals WHERE tenant_id = $1
	ORDER BY created_at DESC, id DESC LIMIT $2`
	sqlProposalListStatus = `SELECT ` + proposalCols + ` FROM proposals WHERE tenant_id = $1 AND status = $2
	ORDER BY created_at DESC, id DESC LIMIT $3`
	sqlProposalUpdateStatus = `UPDATE proposals SET status = $1, version = version + 1, updated_at = $2
	WHERE tenant_id = $3 AND id = $4 AND status = $5 AND version = $6
	RETURNING ` + proposalCols
	sqlProposalAdvance = `UPDATE proposals SET status = $1, dry_run = $2, decision = $3, post_state_sha256 = $4,
	version = version + 1, updated_at = $5
	WHERE tenant_id = $6 AND id = $7 AND status = $8 AND version = $9
	RETURNING ` + proposalCols
)

func scanProposal(r row) (*Proposal, error) {
	var p Proposal
	err := r.Scan(&p.ID, &p.TenantID, &p.Status, &p.Impact, &p.DryRun, &p.Manifest, &p.ManifestSHA256,
		&p.Metadata, &p.PreStateSHA256, &p.IdempotencyKey, &p.CreatedBy, &p.TraceID, &p.Version,
		timeCol{&p.CreatedAt}, timeCol{&p.UpdatedAt}, &p.Decision, &p.PostStateSHA256, &p.Action, &p.Target)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

type proposalStore struct{ s *sqlStore }

func (ps proposalStore) Create(ctx context.Context, p *Proposal) (*Proposal, bool, error) {
	s := ps.s
	r, err := normalizeProposal(p)
	if err != nil {
		return nil, false, err
	}
	stored, err := scanProposal(s.w.queryRow(ctx, sqlProposalInsert,
		r.ID, r.TenantID, r.Status, r.Impact, r.DryRun, r.Manifest, r.ManifestSHA256, r.Metadata,
		r.PreStateSHA256, r.IdempotencyKey, r.CreatedBy, r.TraceID, r.Version,
		s.drv.timeArg(r.CreatedAt), s.drv.timeArg(r.UpdatedAt), r.Decision, r.PostStateSHA256, r.Action, r.Target))
	if err == nil {
		return stored, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, s.wrap("create proposal", err)
	}
	// DO NOTHING fired: the idempotency key is taken; return the winner.
	stored, err = scanProposal(s.w.queryRow(ctx, sqlProposalByKey, r.TenantID, r.IdempotencyKey))
	if errors.Is(err, sql.ErrNoRows) { // unreachable unless rows are deleted concurrently
		return nil, false, s.wrap("create proposal", ErrConflict)
	}
	if err != nil {
		return nil, false, s.wrap("create proposal", err)
	}
	return stored, false, nil
}

func (ps proposalStore) Get(ctx context.Context, tenantID, id string) (*Proposal, error) {
	p, err := scanProposal(ps.s.r.queryRow(ctx, sqlProposalGet, tenantID, id))
	return p, ps.s.wrap("get proposal", err)
}

func (ps proposalStore) List(ctx context.Context, tenantID, status string, limit int) ([]*Proposal, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	q, args := sqlProposalList, []any{tenantID, limit}
	if status != "" {
		q, args = sqlProposalListStatus, []any{tenantID, status, limit}
	}
	rs, err := ps.s.r.query(ctx, q, args...)
	if err != nil {
		return nil, ps.s.wrap("list proposals", err)
	}
	out, err := collect(rs, scanProposal)
	return out, ps.s.wrap("list proposals", err)
}

func (ps proposalStore) History(ctx context.Context, tenantID, action, target string, statuses []string, limit int) (map[string]int, error) {
	out := map[string]int{}
	if len(statuses) == 0 {
		return out, nil
	}
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	// The inner query is a range of proposals_tenant_action_target_idx (it covers every
	// column read), so the cost is bounded by limit, not by the size of the table.
	args := []any{tenantID, action}
	where := "tenant_id = $1 AND action = $2"
	if target != "" {
		args = append(args, target)
		where += fmt.Sprintf(" AND target = $%d", len(args))
	}
	in := make([]string, len(statuses))
	for i, st := range statuses {
		args = append(args, st)
		in[i] = fmt.Sprintf("$%d", len(args))
	}
	args = append(args, limit)
	q := fmt.Sprintf(`SELECT status, count(*) FROM (SELECT status FROM proposals WHERE %s AND status IN (%s)
	ORDER BY created_at DESC LIMIT $%d) AS recent GROUP BY status`, where, strings.Join(in, ", "), len(args))
	rs, err := ps.s.r.query(ctx, q, args...)
	if err != nil {
		return nil, ps.s.wrap("proposal history", err)
	}
	type count struct {
		status string
		n      int
	}
	counts, err := collect(rs, func(r row) (*count, error) {
		var c count
		return &c, r.Scan(&c.status, &c.n)
	})
	if err != nil {
		return nil, ps.s.wrap("proposal history", err)
	}
	for _, c := range counts {
		out[c.status] = c.n
	}
	return out, nil
}

func (ps proposalStore) UpdateStatus(ctx context.Context, tenantID, id, from, to string, expectedVersion int64) (*Proposal, error) {
	if err := checkText("to", to, true); err != nil {
		return nil, err
	}
	return ps.guarded(ctx, "update proposal status", tenantID, id, from, expectedVersion, sqlProposalUpdateStatus,
		to, ps.s.drv.timeArg(now()), tenantID, id, from, expectedVersion)
}

func (ps proposalStore) Advance(ctx context.Context, tenantID, id, from string, expectedVersion int64, c ProposalChange) (*Proposal, error) {
	if err := checkText("Status", c.Status, true); err != nil {
		return nil, err
	}
	if len(c.Decision) == 0 {
		c.Decision = []byte("{}")
	} else if err := checkJSON("Decision", c.Decision); err != nil {
		return nil, err
	}
	return ps.guarded(ctx, "advance proposal", tenantID, id, from, expectedVersion, sqlProposalAdvance,
		c.Status, c.DryRun, c.Decision, c.PostStateSHA256, ps.s.drv.timeArg(now()), tenantID, id, from, expectedVersion)
}

// guarded runs a compare-and-swap UPDATE ... RETURNING and, when nothing matched, tells
// a missing row (ErrNotFound) from a failed guard (ErrConflict).
func (ps proposalStore) guarded(ctx context.Context, op, tenantID, id, from string, expectedVersion int64, q string, args ...any) (*Proposal, error) {
	s := ps.s
	p, err := scanProposal(s.w.queryRow(ctx, q, args...))
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap(op, err)
	}
	var one int
	switch err := s.w.queryRow(ctx, sqlProposalExists, tenantID, id).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, s.wrap(op, ErrNotFound)
	case err != nil:
		return nil, s.wrap(op, err)
	}
	return nil, s.wrap(op, fmt.Errorf("%w: status is not %q or version is not %d", ErrConflict, from, expectedVersion))
}
