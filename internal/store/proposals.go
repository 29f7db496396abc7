package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"
)

const proposalCols = `id, tenant_id, status, impact, dry_run, manifest, manifest_sha256, metadata,
	pre_state_sha256, idempotency_key, created_by, trace_id, version, created_at, updated_at,
	decision, post_state_sha256, action, target, consensus_bundle, request_sha256`

const (
	// The conflict target names the partial unique index, so only an
	// idempotency-key collision is absorbed; a duplicate id still fails.
	sqlProposalInsert = `INSERT INTO proposals (` + proposalCols + `, lease_owner, lease_until)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
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
	version = version + 1, updated_at = $5, consensus_bundle = COALESCE($10, consensus_bundle),
	impact = COALESCE($11, impact)
	WHERE tenant_id = $6 AND id = $7 AND status = $8 AND version = $9
	RETURNING ` + proposalCols
)

func scanProposal(r row) (*Proposal, error) {
	var p Proposal
	err := r.Scan(&p.ID, &p.TenantID, &p.Status, &p.Impact, &p.DryRun, &p.Manifest, &p.ManifestSHA256,
		&p.Metadata, &p.PreStateSHA256, &p.IdempotencyKey, &p.CreatedBy, &p.TraceID, &p.Version,
		timeCol{&p.CreatedAt}, timeCol{&p.UpdatedAt}, &p.Decision, &p.PostStateSHA256, &p.Action, &p.Target,
		&p.ConsensusBundle, &p.RequestSHA256)
	if err != nil {
		return nil, err
	}
	if len(p.ConsensusBundle) == 0 {
		p.ConsensusBundle = nil // none recorded
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
	var stored *Proposal
	created := true
	err = s.write(ctx, func(w querier) (err error) {
		stored, err = scanProposal(w.queryRow(ctx, sqlProposalInsert,
			r.ID, r.TenantID, r.Status, r.Impact, r.DryRun, r.Manifest, r.ManifestSHA256, r.Metadata,
			r.PreStateSHA256, r.IdempotencyKey, r.CreatedBy, r.TraceID, r.Version,
			s.drv.timeArg(r.CreatedAt), s.drv.timeArg(r.UpdatedAt), r.Decision, r.PostStateSHA256, r.Action, r.Target,
			string(r.ConsensusBundle), r.RequestSHA256, r.LeaseOwner, s.leaseArg(r.LeaseUntil)))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// DO NOTHING fired: the idempotency key is taken; return the winner.
		created = false
		stored, err = scanProposal(w.queryRow(ctx, sqlProposalByKey, r.TenantID, r.IdempotencyKey))
		return err
	})
	if err == nil {
		return stored, created, nil
	}
	if created {
		return nil, false, s.wrap("create proposal", err)
	}
	if errors.Is(err, sql.ErrNoRows) { // unreachable unless rows are deleted concurrently
		return nil, false, s.wrap("create proposal", ErrConflict)
	}
	return nil, false, s.wrap("create proposal", err)
}

func (ps proposalStore) GetByIdempotencyKey(ctx context.Context, tenantID, key string) (*Proposal, error) {
	if key == "" {
		return nil, ps.s.wrap("get proposal by idempotency key", ErrNotFound)
	}
	p, err := scanProposal(ps.s.r.queryRow(ctx, sqlProposalByKey, tenantID, key))
	return p, ps.s.wrap("get proposal by idempotency key", err)
}

func (ps proposalStore) Get(ctx context.Context, tenantID, id string) (*Proposal, error) {
	p, err := scanProposal(ps.s.r.queryRow(ctx, sqlProposalGet, tenantID, id))
	return p, ps.s.wrap("get proposal", err)
}

func (ps proposalStore) List(ctx context.Context, tenantID, status string, limit int) ([]*Proposal, error) {
	limit = listLimit(limit)
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
	// One index range per status (proposals_tenant_action_status_idx, or
	// proposals_tenant_action_target_idx with a target), each already in created_at
	// order and covering every column read: the cost is bounded by limit, not by the
	// size of the table.
	args := []any{tenantID, action, limit}
	where := "tenant_id = $1 AND action = $2"
	if target != "" {
		args = append(args, target)
		where += " AND target = $4"
	}
	parts := make([]string, len(statuses))
	for i, st := range statuses {
		args = append(args, st)
		parts[i] = fmt.Sprintf(`SELECT $%d AS status, count(*) AS n FROM (SELECT 1 AS one FROM proposals
	WHERE %s AND status = $%d ORDER BY created_at DESC LIMIT $3) AS s%d`, len(args), where, len(args), i)
	}
	q := strings.Join(parts, "\nUNION ALL\n")
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
		if c.n > 0 {
			out[c.status] = c.n
		}
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
	if c.PostStateSHA256 != "" && !canonical.IsSHA256Hex(c.PostStateSHA256) {
		return nil, invalidf("PostStateSHA256 must be 64 lower-case hex characters")
	}
	var bundle any // NULL: unchanged
	if c.ConsensusBundle != nil {
		if err := checkJSONObject("ConsensusBundle", c.ConsensusBundle); err != nil {
			return nil, err
		}
		bundle = string(c.ConsensusBundle)
	}
	var impact any // NULL: unchanged
	switch c.Impact {
	case "":
	case "low", "medium", "high":
		impact = c.Impact
	default:
		return nil, invalidf("Impact %q is not one of low, medium, high or empty", c.Impact)
	}
	return ps.guarded(ctx, "advance proposal", tenantID, id, from, expectedVersion, sqlProposalAdvance,
		c.Status, c.DryRun, c.Decision, c.PostStateSHA256, ps.s.drv.timeArg(now()), tenantID, id, from, expectedVersion, bundle, impact)
}

// guarded runs a compare-and-swap UPDATE ... RETURNING and, when nothing matched, tells
// a missing row (ErrNotFound) from a failed guard (ErrConflict).
func (ps proposalStore) guarded(ctx context.Context, op, tenantID, id, from string, expectedVersion int64, q string, args ...any) (*Proposal, error) {
	s := ps.s
	var p *Proposal
	var exists error
	err := s.write(ctx, func(w querier) (err error) {
		p, err = scanProposal(w.queryRow(ctx, q, args...))
		if errors.Is(err, sql.ErrNoRows) {
			var one int
			exists = w.queryRow(ctx, sqlProposalExists, tenantID, id).Scan(&one)
		}
		return err
	})
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap(op, err)
	}
	switch {
	case errors.Is(exists, sql.ErrNoRows):
		return nil, s.wrap(op, ErrNotFound)
	case exists != nil:
		return nil, s.wrap(op, exists)
	}
	return nil, s.wrap(op, fmt.Errorf("%w: status is not %q or version is not %d", ErrConflict, from, expectedVersion))
}

// leaseArg encodes a lease end: NULL for none.
func (s *sqlStore) leaseArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.drv.timeArg(normTime(t))
}

// inList is "$first, $first+1, ..." for n arguments.
func inList(first, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("$%d", first+i)
	}
	return strings.Join(parts, ", ")
}

func (ps proposalStore) ClaimWork(ctx context.Context, owner string, states []string, now, until time.Time, limit int) ([]*Proposal, error) {
	if err := checkText("owner", owner, true); err != nil {
		return nil, err
	}
	if len(states) == 0 || limit <= 0 {
		return []*Proposal{}, nil
	}
	limit = min(limit, MaxListLimit)
	lock := ""
	if ps.s.drv.name() == BackendPostgres {
		// Rows another claimer has locked are skipped, not waited for: each
		// claimer leaves with a disjoint set.
		lock = " FOR UPDATE SKIP LOCKED"
	}
	args := []any{owner, ps.s.leaseArg(until), ps.s.drv.timeArg(normTime(now)), limit}
	for _, st := range states {
		args = append(args, st)
	}
	q := `UPDATE proposals SET lease_owner = $1, lease_until = $2
	WHERE id IN (SELECT id FROM proposals
		WHERE status IN (` + inList(5, len(states)) + `) AND (lease_until IS NULL OR lease_until < $3)
		ORDER BY created_at LIMIT $4` + lock + `)
	RETURNING ` + proposalCols
	var out []*Proposal
	err := ps.s.write(ctx, func(w querier) error {
		rs, err := w.query(ctx, q, args...)
		if err != nil {
			return err
		}
		out, err = collect(rs, scanProposal)
		return err
	})
	if err != nil {
		return nil, ps.s.wrap("claim proposals", err)
	}
	return out, nil
}

func (ps proposalStore) RenewLeases(ctx context.Context, owner string, states []string, until time.Time) (int64, error) {
	if err := checkText("owner", owner, true); err != nil {
		return 0, err
	}
	if len(states) == 0 {
		return 0, nil
	}
	args := []any{owner, ps.s.leaseArg(until)}
	for _, st := range states {
		args = append(args, st)
	}
	q := `UPDATE proposals SET lease_until = $2 WHERE lease_owner = $1 AND status IN (` + inList(3, len(states)) + `)`
	var n int64
	err := ps.s.write(ctx, func(w querier) (err error) {
		n, err = w.exec(ctx, q, args...)
		return err
	})
	return n, ps.s.wrap("renew leases", err)
}

func (ps proposalStore) ReleaseLeases(ctx context.Context, owner string) error {
	err := ps.s.write(ctx, func(w querier) error {
		_, err := w.exec(ctx, `UPDATE proposals SET lease_until = NULL WHERE lease_owner = $1 AND lease_until IS NOT NULL`, owner)
		return err
	})
	return ps.s.wrap("release leases", err)
}
