package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CanaryRun is one sim-canary run: a whole-chain dry run or a canary rollout.
type CanaryRun struct {
	ID         string // ULID string (canonical upper-case), assigned by the caller
	TenantID   string // required
	ProposalID string // required
	State      string // e.g. "PASSED"; required
	DryRun     bool
	CreatedBy  string // the token's subject ("" when none)
	// Run is the run's record as the sim-canary wrote it (a JSON object: steps and
	// scorecard), returned byte for byte.
	Run       []byte
	Version   int64     // 1 on create, +1 per Update (input ignored)
	CreatedAt time.Time // UTC; store clock when zero
	UpdatedAt time.Time // UTC; CreatedAt on create, store clock on update
}

// MaxCanaryRunBytes bounds a run's record.
const MaxCanaryRunBytes = 1 << 20

// CanaryRunStore persists the sim-canary's runs. All methods are tenant-scoped: another
// tenant's run is ErrNotFound.
type CanaryRunStore interface {
	// Create stores a new run; ErrConflict when the id exists, ErrInvalid for a bad
	// field (nothing is written). r is not modified.
	Create(ctx context.Context, r *CanaryRun) (*CanaryRun, error)
	// Get returns the tenant's run; ErrNotFound if none.
	Get(ctx context.Context, tenantID, id string) (*CanaryRun, error)
	// Update sets the run's state and record as a compare-and-swap on its version:
	// ErrConflict when the stored version is not expectedVersion, ErrNotFound when the
	// tenant has no such run.
	Update(ctx context.Context, tenantID, id string, expectedVersion int64, state string, run []byte) (*CanaryRun, error)
	// ListByProposal returns the tenant's runs of a proposal, newest first, at most
	// limit (DefaultListLimit when <= 0, capped at MaxListLimit).
	ListByProposal(ctx context.Context, tenantID, proposalID string, limit int) ([]*CanaryRun, error)
	// ListRunning returns the runs in state RUNNING of every tenant, oldest first, at
	// most limit (DefaultListLimit when <= 0, capped at MaxListLimit): what a restarted
	// sim-canary resumes.
	ListRunning(ctx context.Context, limit int) ([]*CanaryRun, error)
	// Lease gives owner the lease of the tenant's RUNNING rollout until until, when
	// owner holds it already (a renewal) or nobody does (never leased, or its lease
	// ended before now). It reports whether owner holds it now: false when another
	// owner's lease runs, or the run is no longer RUNNING. ErrNotFound when the tenant
	// has no such run.
	Lease(ctx context.Context, tenantID, id, owner string, now, until time.Time) (bool, error)
	// ReleaseLeases ends owner's leases (a sim-canary that stops): other processes
	// take the runs over at once.
	ReleaseLeases(ctx context.Context, owner string) error
}

func (s *sqlStore) CanaryRuns() CanaryRunStore { return canaryRunStore{s} }

const canaryRunCols = `id, tenant_id, proposal_id, state, dry_run, created_by, run, version, created_at, updated_at`

const (
	sqlCanaryRunInsert = `INSERT INTO canary_runs (` + canaryRunCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
	RETURNING ` + canaryRunCols
	sqlCanaryRunGet    = `SELECT ` + canaryRunCols + ` FROM canary_runs WHERE tenant_id = $1 AND id = $2`
	sqlCanaryRunUpdate = `UPDATE canary_runs SET state = $4, run = $5, version = version + 1, updated_at = $6
	WHERE tenant_id = $1 AND id = $2 AND version = $3
	RETURNING ` + canaryRunCols
	sqlCanaryRunList = `SELECT ` + canaryRunCols + ` FROM canary_runs WHERE tenant_id = $1 AND proposal_id = $2
	ORDER BY created_at DESC, id DESC LIMIT $3`
	sqlCanaryRunRunning = `SELECT ` + canaryRunCols + ` FROM canary_runs WHERE state = 'RUNNING'
	ORDER BY created_at, id LIMIT $1`
)

func scanCanaryRun(r row) (*CanaryRun, error) {
	var c CanaryRun
	var run []byte
	err := r.Scan(&c.ID, &c.TenantID, &c.ProposalID, &c.State, &c.DryRun, &c.CreatedBy, &run, &c.Version,
		timeCol{&c.CreatedAt}, timeCol{&c.UpdatedAt})
	if err != nil {
		return nil, err
	}
	c.Run = append([]byte(nil), run...)
	return &c, nil
}

type canaryRunStore struct{ s *sqlStore }

func checkCanaryRecord(state string, run []byte) error {
	if err := checkText("state", state, true); err != nil {
		return err
	}
	if len(run) > MaxCanaryRunBytes {
		return invalidf("run is %d bytes, over the limit of %d", len(run), MaxCanaryRunBytes)
	}
	return checkJSONObject("run", run)
}

func (c canaryRunStore) Create(ctx context.Context, r *CanaryRun) (*CanaryRun, error) {
	if r == nil {
		return nil, invalidf("canary run is nil")
	}
	if err := errors.Join(checkULID("id", r.ID), checkText("tenant_id", r.TenantID, true),
		checkText("proposal_id", r.ProposalID, true), checkText("created_by", r.CreatedBy, false),
		checkCanaryRecord(r.State, r.Run)); err != nil {
		return nil, err
	}
	created := normTime(r.CreatedAt)
	if r.CreatedAt.IsZero() {
		created = now()
	}
	var stored *CanaryRun
	err := c.s.write(ctx, func(w querier) (err error) {
		stored, err = scanCanaryRun(w.queryRow(ctx, sqlCanaryRunInsert, r.ID, r.TenantID, r.ProposalID, r.State,
			r.DryRun, r.CreatedBy, string(r.Run), c.s.drv.timeArg(created)))
		return err
	})
	return stored, c.s.wrap("create canary run", err)
}

func (c canaryRunStore) Get(ctx context.Context, tenantID, id string) (*CanaryRun, error) {
	r, err := scanCanaryRun(c.s.r.queryRow(ctx, sqlCanaryRunGet, tenantID, id))
	return r, c.s.wrap("get canary run", err)
}

func (c canaryRunStore) Update(ctx context.Context, tenantID, id string, expectedVersion int64, state string, run []byte) (*CanaryRun, error) {
	if err := checkCanaryRecord(state, run); err != nil {
		return nil, err
	}
	var stored *CanaryRun
	err := c.s.write(ctx, func(w querier) (err error) {
		stored, err = scanCanaryRun(w.queryRow(ctx, sqlCanaryRunUpdate, tenantID, id, expectedVersion, state, string(run),
			c.s.drv.timeArg(now())))
		if errors.Is(err, sql.ErrNoRows) {
			// Tell a missing run from a stale version.
			if _, gerr := scanCanaryRun(w.queryRow(ctx, sqlCanaryRunGet, tenantID, id)); gerr != nil {
				return gerr
			}
			return fmt.Errorf("%w: canary run %s is not at version %d", ErrConflict, id, expectedVersion)
		}
		return err
	})
	return stored, c.s.wrap("update canary run", err)
}

func (c canaryRunStore) ListByProposal(ctx context.Context, tenantID, proposalID string, limit int) ([]*CanaryRun, error) {
	rs, err := c.s.r.query(ctx, sqlCanaryRunList, tenantID, proposalID, listLimit(limit))
	if err != nil {
		return nil, c.s.wrap("list canary runs", err)
	}
	out, err := collect(rs, scanCanaryRun)
	return out, c.s.wrap("list canary runs", err)
}

const sqlCanaryRunLease = `UPDATE canary_runs SET lease_owner = $3, lease_until = $4
	WHERE tenant_id = $1 AND id = $2 AND state = 'RUNNING'
	  AND (lease_owner = $3 OR lease_until IS NULL OR lease_until < $5)`

func (c canaryRunStore) Lease(ctx context.Context, tenantID, id, owner string, now, until time.Time) (bool, error) {
	if err := checkText("owner", owner, true); err != nil {
		return false, err
	}
	if !until.After(now) {
		return false, invalidf("lease until %s is not after now %s", until, now)
	}
	var n int64
	err := c.s.write(ctx, func(w querier) (err error) {
		n, err = w.exec(ctx, sqlCanaryRunLease, tenantID, id, owner, c.s.leaseArg(until), c.s.drv.timeArg(normTime(now)))
		if err == nil && n == 0 {
			_, err = scanCanaryRun(w.queryRow(ctx, sqlCanaryRunGet, tenantID, id)) // ErrNotFound, or held
		}
		return err
	})
	return n == 1, c.s.wrap("lease canary run", err)
}

func (c canaryRunStore) ReleaseLeases(ctx context.Context, owner string) error {
	err := c.s.write(ctx, func(w querier) error {
		_, err := w.exec(ctx, `UPDATE canary_runs SET lease_until = NULL WHERE lease_owner = $1 AND lease_until IS NOT NULL`, owner)
		return err
	})
	return c.s.wrap("release canary run leases", err)
}

func (c canaryRunStore) ListRunning(ctx context.Context, limit int) ([]*CanaryRun, error) {
	rs, err := c.s.r.query(ctx, sqlCanaryRunRunning, listLimit(limit))
	if err != nil {
		return nil, c.s.wrap("list running canary runs", err)
	}
	out, err := collect(rs, scanCanaryRun)
	return out, c.s.wrap("list running canary runs", err)
}
