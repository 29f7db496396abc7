package store

import "context"

const snapshotCols = `id, proposal_id, tenant_id, kind, sha256, state, created_at`

const (
	sqlSnapshotInsert = `INSERT INTO snapshots (` + snapshotCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	sqlSnapshotList   = `SELECT ` + snapshotCols + ` FROM snapshots
	WHERE tenant_id = $1 AND proposal_id = $2 ORDER BY created_at, id`
)

func scanSnapshot(r row) (*Snapshot, error) {
	var s Snapshot
	err := r.Scan(&s.ID, &s.ProposalID, &s.TenantID, &s.Kind, &s.SHA256, &s.State, timeCol{&s.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

type snapshotStore struct{ s *sqlStore }

func (ss snapshotStore) Put(ctx context.Context, snap *Snapshot) error {
	r, err := normalizeSnapshot(snap)
	if err != nil {
		return err
	}
	// The composite foreign key (tenant_id, proposal_id) makes a proposal of
	// another tenant look missing: the driver reports it as ErrNotFound.
	err = ss.s.write(ctx, func(w querier) error {
		_, err := w.exec(ctx, sqlSnapshotInsert,
			r.ID, r.ProposalID, r.TenantID, r.Kind, r.SHA256, r.State, ss.s.drv.timeArg(r.CreatedAt))
		return err
	})
	if err != nil {
		return ss.s.wrap("put snapshot", err)
	}
	snap.SHA256, snap.CreatedAt = r.SHA256, r.CreatedAt
	return nil
}

func (ss snapshotStore) List(ctx context.Context, tenantID, proposalID string) ([]*Snapshot, error) {
	rs, err := ss.s.r.query(ctx, sqlSnapshotList, tenantID, proposalID)
	if err != nil {
		return nil, ss.s.wrap("list snapshots", err)
	}
	out, err := collect(rs, scanSnapshot)
	return out, ss.s.wrap("list snapshots", err)
}
