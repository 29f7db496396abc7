package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const worldStateCols = `tenant_id, region, target, state, version, updated_at`

const (
	sqlWorldStateGet = `SELECT ` + worldStateCols + ` FROM world_states
	WHERE tenant_id = $1 AND region = $2 AND target = $3`
	// Unconditional upsert (expectedVersion < 0).
	sqlWorldStateUpsert = `INSERT INTO world_states (` + worldStateCols + `) VALUES ($1, $2, $3, $4, 1, $5)
	ON CONFLICT (tenant_id, region, target) DO UPDATE
	SET state = excluded.state, version = world_states.version + 1, updated_at = excluded.updated_at
	RETURNING ` + worldStateCols
	// Create only (expectedVersion == 0): no row back means it already exists.
	sqlWorldStateInsert = `INSERT INTO world_states (` + worldStateCols + `) VALUES ($1, $2, $3, $4, 1, $5)
	ON CONFLICT (tenant_id, region, target) DO NOTHING
	RETURNING ` + worldStateCols
	// Compare-and-swap (expectedVersion > 0): no row back means missing or stale.
	sqlWorldStateUpdate = `UPDATE world_states SET state = $4, version = version + 1, updated_at = $5
	WHERE tenant_id = $1 AND region = $2 AND target = $3 AND version = $6
	RETURNING ` + worldStateCols
)

func scanWorldState(r row) (*WorldState, error) {
	var ws WorldState
	err := r.Scan(&ws.TenantID, &ws.Region, &ws.Target, &ws.State, &ws.Version, timeCol{&ws.UpdatedAt})
	if err != nil {
		return nil, err
	}
	return &ws, nil
}

type worldStateStore struct{ s *sqlStore }

func (wss worldStateStore) Get(ctx context.Context, tenantID, region, target string) (*WorldState, error) {
	ws, err := scanWorldState(wss.s.r.queryRow(ctx, sqlWorldStateGet, tenantID, region, target))
	return ws, wss.s.wrap("get world state", err)
}

// sqlWorldStateGetRegions is the query of GetRegions for n regions: the primary key
// (tenant_id, region, target) serves it with one probe per region on both backends.
// It leaves out tenant_id and target, which are the arguments.
func sqlWorldStateGetRegions(n int) string {
	if n < len(worldStateGetRegionsSQL) {
		return worldStateGetRegionsSQL[n]
	}
	return buildWorldStateGetRegions(n)
}

// worldStateGetRegionsSQL holds the texts of the usual region counts, built once.
var worldStateGetRegionsSQL = func() (q [9]string) {
	for n := range q {
		q[n] = buildWorldStateGetRegions(n)
	}
	return q
}()

func buildWorldStateGetRegions(n int) string {
	var b strings.Builder
	b.WriteString(`SELECT region, state, version, updated_at FROM world_states
	WHERE tenant_id = $1 AND target = $2 AND region IN (`)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+3))
	}
	b.WriteString(")")
	return b.String()
}

func (wss worldStateStore) GetRegions(ctx context.Context, tenantID, target string, regions []string) ([]*WorldState, error) {
	out := make([]*WorldState, len(regions))
	if len(regions) == 0 {
		return out, nil
	}
	args := make([]any, 0, 2+len(regions))
	args = append(args, tenantID, target)
	for _, r := range regions {
		args = append(args, r)
	}
	rs, err := wss.s.r.query(ctx, sqlWorldStateGetRegions(len(regions)), args...)
	if err != nil {
		return nil, wss.s.wrap("get world states", err)
	}
	found, err := collect(rs, func(r row) (*WorldState, error) {
		ws := WorldState{TenantID: tenantID, Target: target}
		return &ws, r.Scan(&ws.Region, &ws.State, &ws.Version, timeCol{&ws.UpdatedAt})
	})
	if err != nil {
		return nil, wss.s.wrap("get world states", err)
	}
	for _, ws := range found {
		for i, r := range regions {
			if r == ws.Region {
				out[i] = ws // every occurrence of a region listed twice
			}
		}
	}
	return out, nil
}

func (wss worldStateStore) Put(ctx context.Context, ws *WorldState, expectedVersion int64) (*WorldState, error) {
	s := wss.s
	r, err := normalizeWorldState(ws)
	if err != nil {
		return nil, err
	}
	args := []any{r.TenantID, r.Region, r.Target, r.State, s.drv.timeArg(r.UpdatedAt)}
	q := sqlWorldStateUpsert
	switch {
	case expectedVersion == 0:
		q = sqlWorldStateInsert
	case expectedVersion > 0:
		q, args = sqlWorldStateUpdate, append(args, expectedVersion)
	}
	var stored *WorldState
	err = s.write(ctx, func(w querier) (err error) {
		stored, err = scanWorldState(w.queryRow(ctx, q, args...))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("%w: current version is not %d", ErrConflict, expectedVersion)
	}
	return stored, s.wrap("put world state", err)
}
