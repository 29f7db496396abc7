package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// AuditEntry is one row of a tenant's append-only audit log (internal/auditlog
// computes the hashes; the store keeps the rows and guards the chain's shape).
type AuditEntry struct {
	TenantID       string // required; each tenant has its own log
	Index          int64  // position in the tenant's log, from 0, without gaps
	ProposalID     string // required
	Event          string // required, e.g. "proposal.submitted"
	Actor          string // who caused it (redacted JWT subject or service name)
	TraceID        string // OpenTelemetry trace id, or ""
	PayloadSHA256  string // lower-case hex SHA-256 of the canonical payload; required
	Summary        []byte // redacted summary: a JSON object, stored byte-for-byte; "{}" when empty
	IdempotencyKey string // "" when none; unique per tenant otherwise
	PrevHash       string // EntryHash of the entry at Index-1; "" exactly at Index 0
	EntryHash      string // lower-case hex SHA-256 over the entry (auditlog.EntryHash)
	CreatedAt      time.Time
}

// AuditHead is the end of a tenant's log.
type AuditHead struct {
	Size     int64  // entries in the log
	LastHash string // EntryHash of the entry at Size-1; "" when Size is 0
}

// AuditCheckpoint is a signed checkpoint (tree size and root) of a tenant's log.
type AuditCheckpoint struct {
	TenantID       string    // required
	Size           int64     // entries covered, >= 1
	RootHash       string    // lower-case hex RFC 6962 root of the first Size entries
	Note           string    // C2SP signed note: checkpoint body and Ed25519 signature
	MLDSASignature string    // base64 ML-DSA-65 signature of the checkpoint body
	MLDSAKeyID     string    // id of the ML-DSA-65 key that made it
	CreatedAt      time.Time // UTC; store clock when zero
}

// AuditLogStore persists the audit log. Rows are never updated or deleted:
// the schema refuses it (triggers on both backends), and no method here does
// it. Every method except ListTenants is tenant-scoped.
type AuditLogStore interface {
	// Append inserts entries, of one or several tenants, in one transaction:
	// all of them or none are durable when it returns. Each tenant's entries
	// must continue its log: consecutive indexes starting at the log's current
	// size, each PrevHash equal to the EntryHash before it (the stored last
	// entry's for the first). A log that moved on meanwhile (another writer),
	// a duplicate index or a duplicate (TenantID, IdempotencyKey) is
	// ErrConflict; nothing is written then. The store checks the chain's shape,
	// not the hashes themselves. CreatedAt must already be UTC whole
	// microseconds (it is hashed), and entries are not modified.
	Append(ctx context.Context, entries []*AuditEntry) error
	// Head returns the end of the tenant's log (Size 0 and LastHash "" when
	// empty). Inside InTx it also serialises the log's appenders until the
	// transaction ends, so entries built on this head cannot conflict: on
	// Postgres it takes a transaction-scoped advisory lock keyed by the
	// tenant; on SQLite the transaction already holds the write lock. Take
	// several tenants' heads in sorted order, so two writers never deadlock.
	Head(ctx context.Context, tenantID string) (AuditHead, error)
	// Size is the number of entries in the tenant's log (its last index + 1).
	Size(ctx context.Context, tenantID string) (int64, error)
	// Get returns the entry at index; ErrNotFound if there is none.
	Get(ctx context.Context, tenantID string, index int64) (*AuditEntry, error)
	// GetByIdempotencyKey returns the entry appended with key; ErrNotFound if none.
	GetByIdempotencyKey(ctx context.Context, tenantID, key string) (*AuditEntry, error)
	// GetByIdempotencyKeys returns the entries appended with any of keys, by key: one
	// query on SQLite, one index probe per key on Postgres (see the implementation).
	// A key without an entry (or "") is absent from the map.
	GetByIdempotencyKeys(ctx context.Context, tenantID string, keys []string) (map[string]*AuditEntry, error)
	// FindByHash returns an entry whose EntryHash is entryHash; ErrNotFound if none.
	// It scans the tenant's log: for investigating a broken chain, not for serving.
	FindByHash(ctx context.Context, tenantID, entryHash string) (*AuditEntry, error)
	// List returns up to limit entries with Index >= from, in index order
	// (limit <= 0 -> DefaultListLimit, capped at MaxListLimit).
	List(ctx context.Context, tenantID string, from int64, limit int) ([]*AuditEntry, error)
	// ListByProposal returns the proposal's entries in index order; limit as List.
	ListByProposal(ctx context.Context, tenantID, proposalID string, limit int) ([]*AuditEntry, error)
	// ListTenants returns the tenants that have audit entries or checkpoints,
	// greater than after, in order. It is the one cross-tenant read, for
	// verifying every log; never serve its result to a caller.
	ListTenants(ctx context.Context, after string, limit int) ([]string, error)
	// PutCheckpoint stores cp (not modified). A checkpoint of the same
	// (TenantID, Size) is ErrConflict. Returns the stored row.
	PutCheckpoint(ctx context.Context, cp *AuditCheckpoint) (*AuditCheckpoint, error)
	// LatestCheckpoint returns the tenant's largest checkpoint; ErrNotFound if none.
	LatestCheckpoint(ctx context.Context, tenantID string) (*AuditCheckpoint, error)
	// ListCheckpoints returns the tenant's checkpoints by ascending size.
	ListCheckpoints(ctx context.Context, tenantID string) ([]*AuditCheckpoint, error)
}

const auditEntryCols = `tenant_id, idx, proposal_id, event, actor, trace_id, payload_sha256, summary,
	idempotency_key, prev_hash, entry_hash, created_at`

const auditCheckpointCols = `tenant_id, size, root_hash, note, mldsa65_signature, mldsa65_key_id, created_at`

// auditInsertChunk bounds the rows of one multi-row INSERT (12 parameters each).
const auditInsertChunk = 500

const (
	sqlAuditHead = `SELECT idx, entry_hash FROM audit_entries WHERE tenant_id = $1 ORDER BY idx DESC LIMIT 1`
	// Serialises a tenant's appenders on Postgres until the transaction ends.
	sqlAuditLockTenant = `SELECT pg_advisory_xact_lock(hashtextextended('decision-fabric/audit/' || $1, 0))`
	sqlAuditSize       = `SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries WHERE tenant_id = $1`
	sqlAuditGet        = `SELECT ` + auditEntryCols + ` FROM audit_entries WHERE tenant_id = $1 AND idx = $2`
	sqlAuditKey        = `SELECT ` + auditEntryCols + ` FROM audit_entries
	WHERE tenant_id = $1 AND idempotency_key = $2 AND idempotency_key <> ''`
	// On SQLite the keys are one parameter (a JSON array) whatever their number, so
	// one prepared statement serves every batch (the planner probes the unique index
	// per key); Postgres looks keys up one by one (GetByIdempotencyKeys says why).
	sqlAuditKeysSQLite = `SELECT ` + auditEntryCols + ` FROM audit_entries
	WHERE tenant_id = $1 AND idempotency_key IN (SELECT value FROM json_each($2)) AND idempotency_key <> ''`
	sqlAuditHash = `SELECT ` + auditEntryCols + ` FROM audit_entries
	WHERE tenant_id = $1 AND entry_hash = $2 ORDER BY idx LIMIT 1`
	sqlAuditList = `SELECT ` + auditEntryCols + ` FROM audit_entries
	WHERE tenant_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3`
	sqlAuditByProposal = `SELECT ` + auditEntryCols + ` FROM audit_entries
	WHERE tenant_id = $1 AND proposal_id = $2 ORDER BY idx LIMIT $3`
	sqlAuditTenants = `SELECT tenant_id FROM audit_entries WHERE tenant_id > $1
	UNION SELECT tenant_id FROM audit_checkpoints WHERE tenant_id > $1
	ORDER BY 1 LIMIT $2`
	sqlCheckpointInsert = `INSERT INTO audit_checkpoints (` + auditCheckpointCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ` + auditCheckpointCols
	sqlCheckpointLatest = `SELECT ` + auditCheckpointCols + ` FROM audit_checkpoints
	WHERE tenant_id = $1 ORDER BY size DESC LIMIT 1`
	sqlCheckpointList = `SELECT ` + auditCheckpointCols + ` FROM audit_checkpoints
	WHERE tenant_id = $1 ORDER BY size`
)

func scanAuditEntry(r row) (*AuditEntry, error) {
	var e AuditEntry
	err := r.Scan(&e.TenantID, &e.Index, &e.ProposalID, &e.Event, &e.Actor, &e.TraceID, &e.PayloadSHA256,
		&e.Summary, &e.IdempotencyKey, &e.PrevHash, &e.EntryHash, timeCol{&e.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &e, nil
}

func scanAuditCheckpoint(r row) (*AuditCheckpoint, error) {
	var c AuditCheckpoint
	err := r.Scan(&c.TenantID, &c.Size, &c.RootHash, &c.Note, &c.MLDSASignature, &c.MLDSAKeyID, timeCol{&c.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

type auditLogStore struct{ s *sqlStore }

func (as auditLogStore) Append(ctx context.Context, entries []*AuditEntry) error {
	rows, firsts, err := normalizeAuditEntries(entries)
	if err != nil || len(rows) == 0 {
		return err
	}
	return as.s.InTx(ctx, func(tx Store) error {
		t := tx.(*sqlStore)
		for _, first := range firsts {
			if err := checkAuditHead(ctx, t, first); err != nil {
				return err
			}
		}
		chunkRows := auditInsertChunk
		if t.drv.name() == BackendSQLite {
			// SQLite runs in-process: a statement per row costs no round trip, and the
			// one-row INSERT stays prepared, where a multi-row one is parsed anew for
			// every batch size.
			chunkRows = 1
		}
		for start := 0; start < len(rows); start += chunkRows {
			chunk := rows[start:min(start+chunkRows, len(rows))]
			q, args := auditInsert(t.drv, chunk)
			if _, err := t.w.exec(ctx, q, args...); err != nil {
				return t.wrap("append audit entries", err)
			}
		}
		return nil
	})
}

func (as auditLogStore) Head(ctx context.Context, tenantID string) (AuditHead, error) {
	s := as.s
	if s.tx != nil && s.drv.name() == BackendPostgres {
		if _, err := s.w.exec(ctx, sqlAuditLockTenant, tenantID); err != nil {
			return AuditHead{}, s.wrap("lock audit log", err)
		}
	}
	var h AuditHead
	q := s.r // committed writes are visible to readers: no need to queue behind writers
	if s.tx != nil {
		q = s.w
	}
	err := q.queryRow(ctx, sqlAuditHead, tenantID).Scan(&h.Size, &h.LastHash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return AuditHead{}, nil
	case err != nil:
		return AuditHead{}, s.wrap("audit log head", err)
	}
	h.Size++ // idx of the last entry -> entries
	return h, nil
}

// checkAuditHead: first must continue the stored log of its tenant. On
// Postgres two writers may both pass this check; the primary key then makes
// the later insert fail with ErrConflict, so the log never forks or skips.
func checkAuditHead(ctx context.Context, t *sqlStore, first *AuditEntry) error {
	var idx int64
	var hash string
	err := t.w.queryRow(ctx, sqlAuditHead, first.TenantID).Scan(&idx, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		idx, hash = -1, ""
	case err != nil:
		return t.wrap("append audit entries", err)
	}
	if first.Index != idx+1 || first.PrevHash != hash {
		return t.wrap("append audit entries", fmt.Errorf(
			"%w: tenant %q's log has %d entries; entry %d does not continue it", ErrConflict, first.TenantID, idx+1, first.Index))
	}
	return nil
}

// auditInsert is one multi-row INSERT. SQLite gets ?NNN placeholders: it
// resolves $NNN as names, by a linear search per parameter, which makes a
// statement of thousands of parameters quadratic to prepare.
func auditInsert(d driver, rows []*AuditEntry) (string, []any) {
	mark := byte('$')
	if d.name() == BackendSQLite {
		mark = '?'
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_entries (` + auditEntryCols + `) VALUES `)
	args := make([]any, 0, len(rows)*12)
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		for c := range 12 {
			if c == 0 {
				b.WriteByte('(')
			} else {
				b.WriteString(", ")
			}
			b.WriteByte(mark)
			b.WriteString(strconv.Itoa(len(args) + c + 1))
		}
		b.WriteByte(')')
		args = append(args, r.TenantID, r.Index, r.ProposalID, r.Event, r.Actor, r.TraceID, r.PayloadSHA256,
			r.Summary, r.IdempotencyKey, r.PrevHash, r.EntryHash, d.timeArg(r.CreatedAt))
	}
	return b.String(), args
}

func (as auditLogStore) Size(ctx context.Context, tenantID string) (int64, error) {
	var n int64
	err := as.s.r.queryRow(ctx, sqlAuditSize, tenantID).Scan(&n)
	return n, as.s.wrap("audit log size", err)
}

func (as auditLogStore) Get(ctx context.Context, tenantID string, index int64) (*AuditEntry, error) {
	e, err := scanAuditEntry(as.s.r.queryRow(ctx, sqlAuditGet, tenantID, index))
	return e, as.s.wrap("get audit entry", err)
}

func (as auditLogStore) GetByIdempotencyKey(ctx context.Context, tenantID, key string) (*AuditEntry, error) {
	e, err := scanAuditEntry(as.s.r.queryRow(ctx, sqlAuditKey, tenantID, key))
	return e, as.s.wrap("get audit entry by idempotency key", err)
}

func (as auditLogStore) GetByIdempotencyKeys(ctx context.Context, tenantID string, keys []string) (map[string]*AuditEntry, error) {
	out := make(map[string]*AuditEntry, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if as.s.drv.name() != BackendSQLite {
		// Postgres: one lookup per key. A prepared `idempotency_key = ANY($2)` gets a
		// generic plan while the table is small, one that scans all of the tenant's
		// entries, and keeps it as the table grows (measured: 3 to 16 ms per call after
		// some thousands of entries); a single-key lookup is an index probe whatever
		// the plan.
		for _, k := range keys {
			e, err := as.GetByIdempotencyKey(ctx, tenantID, k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	}
	doc, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	found, err := as.list(ctx, "get audit entries by idempotency key", sqlAuditKeysSQLite, tenantID, string(doc))
	if err != nil {
		return nil, err
	}
	for _, e := range found {
		out[e.IdempotencyKey] = e
	}
	return out, nil
}

func (as auditLogStore) FindByHash(ctx context.Context, tenantID, entryHash string) (*AuditEntry, error) {
	e, err := scanAuditEntry(as.s.r.queryRow(ctx, sqlAuditHash, tenantID, entryHash))
	return e, as.s.wrap("find audit entry", err)
}

func (as auditLogStore) List(ctx context.Context, tenantID string, from int64, limit int) ([]*AuditEntry, error) {
	return as.list(ctx, "list audit entries", sqlAuditList, tenantID, from, listLimit(limit))
}

func (as auditLogStore) ListByProposal(ctx context.Context, tenantID, proposalID string, limit int) ([]*AuditEntry, error) {
	return as.list(ctx, "list audit entries", sqlAuditByProposal, tenantID, proposalID, listLimit(limit))
}

func (as auditLogStore) list(ctx context.Context, op, query string, args ...any) ([]*AuditEntry, error) {
	rs, err := as.s.r.query(ctx, query, args...)
	if err != nil {
		return nil, as.s.wrap(op, err)
	}
	out, err := collect(rs, scanAuditEntry)
	return out, as.s.wrap(op, err)
}

func (as auditLogStore) ListTenants(ctx context.Context, after string, limit int) ([]string, error) {
	rs, err := as.s.r.query(ctx, sqlAuditTenants, after, listLimit(limit))
	if err != nil {
		return nil, as.s.wrap("list audit tenants", err)
	}
	defer rs.Close()
	out := []string{}
	for rs.Next() {
		var t string
		if err := rs.Scan(&t); err != nil {
			return nil, as.s.wrap("list audit tenants", err)
		}
		out = append(out, t)
	}
	return out, as.s.wrap("list audit tenants", rs.Err())
}

func (as auditLogStore) PutCheckpoint(ctx context.Context, cp *AuditCheckpoint) (*AuditCheckpoint, error) {
	r, err := normalizeAuditCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	var stored *AuditCheckpoint
	err = as.s.write(ctx, func(w querier) (err error) {
		stored, err = scanAuditCheckpoint(w.queryRow(ctx, sqlCheckpointInsert,
			r.TenantID, r.Size, r.RootHash, r.Note, r.MLDSASignature, r.MLDSAKeyID, as.s.drv.timeArg(r.CreatedAt)))
		return err
	})
	return stored, as.s.wrap("put audit checkpoint", err)
}

func (as auditLogStore) LatestCheckpoint(ctx context.Context, tenantID string) (*AuditCheckpoint, error) {
	c, err := scanAuditCheckpoint(as.s.r.queryRow(ctx, sqlCheckpointLatest, tenantID))
	return c, as.s.wrap("latest audit checkpoint", err)
}

func (as auditLogStore) ListCheckpoints(ctx context.Context, tenantID string) ([]*AuditCheckpoint, error) {
	rs, err := as.s.r.query(ctx, sqlCheckpointList, tenantID)
	if err != nil {
		return nil, as.s.wrap("list audit checkpoints", err)
	}
	out, err := collect(rs, scanAuditCheckpoint)
	return out, as.s.wrap("list audit checkpoints", err)
}

// normalizeAuditEntries validates entries and returns copies to insert and,
// per tenant, the first of its entries (whose continuity with the stored log
// Append checks). Within the batch each tenant's entries must be consecutive.
func normalizeAuditEntries(entries []*AuditEntry) (rows, firsts []*AuditEntry, err error) {
	last := map[string]*AuditEntry{}
	keys := map[string]bool{}
	for i, e := range entries {
		if e == nil {
			return nil, nil, invalidf("entries[%d]: nil", i)
		}
		r := *e
		field := func(name string) string { return fmt.Sprintf("entries[%d].%s", i, name) }
		for _, f := range []struct {
			name, v  string
			required bool
		}{
			{"TenantID", r.TenantID, true}, {"ProposalID", r.ProposalID, true}, {"Event", r.Event, true},
			{"Actor", r.Actor, false}, {"TraceID", r.TraceID, false}, {"IdempotencyKey", r.IdempotencyKey, false},
		} {
			if checkText("", f.v, f.required) != nil { // the field's name is formatted only for the error
				return nil, nil, checkText(field(f.name), f.v, f.required)
			}
		}
		switch {
		case r.Index < 0:
			return nil, nil, invalidf("%s %d: want >= 0", field("Index"), r.Index)
		case !canonical.IsSHA256Hex(r.PayloadSHA256):
			return nil, nil, invalidf("%s must be 64 lower-case hex characters", field("PayloadSHA256"))
		case !canonical.IsSHA256Hex(r.EntryHash):
			return nil, nil, invalidf("%s must be 64 lower-case hex characters", field("EntryHash"))
		case r.Index == 0 && r.PrevHash != "":
			return nil, nil, invalidf("%s must be empty for the first entry", field("PrevHash"))
		case r.Index > 0 && !canonical.IsSHA256Hex(r.PrevHash):
			return nil, nil, invalidf("%s must be 64 lower-case hex characters", field("PrevHash"))
		case r.CreatedAt.IsZero() || !r.CreatedAt.Equal(normTime(r.CreatedAt)):
			return nil, nil, invalidf("%s must be set, in whole microseconds (it is hashed)", field("CreatedAt"))
		}
		if len(r.Summary) == 0 {
			r.Summary = []byte("{}")
		} else if checkJSONObject("", r.Summary) != nil {
			return nil, nil, checkJSONObject(field("Summary"), r.Summary)
		}
		if r.IdempotencyKey != "" {
			k := r.TenantID + "\x00" + r.IdempotencyKey
			if keys[k] {
				return nil, nil, fmt.Errorf("%w: %s %q repeats within the batch", ErrConflict, field("IdempotencyKey"), r.IdempotencyKey)
			}
			keys[k] = true
		}
		if prev, ok := last[r.TenantID]; ok {
			if r.Index != prev.Index+1 || r.PrevHash != prev.EntryHash {
				return nil, nil, invalidf("%s: tenant %q's entries must be consecutive and chained", field("Index"), r.TenantID)
			}
		} else {
			firsts = append(firsts, &r)
		}
		r.CreatedAt = normTime(r.CreatedAt)
		last[r.TenantID] = &r
		rows = append(rows, &r)
	}
	return rows, firsts, nil
}

func normalizeAuditCheckpoint(cp *AuditCheckpoint) (*AuditCheckpoint, error) {
	if cp == nil {
		return nil, invalidf("nil checkpoint")
	}
	r := *cp
	if err := checkAll(
		checkText("TenantID", r.TenantID, true),
		checkText("Note", r.Note, true),
		checkText("MLDSASignature", r.MLDSASignature, true),
		checkText("MLDSAKeyID", r.MLDSAKeyID, true),
	); err != nil {
		return nil, err
	}
	if r.Size < 1 {
		return nil, invalidf("Size %d: want >= 1", r.Size)
	}
	if !canonical.IsSHA256Hex(r.RootHash) {
		return nil, invalidf("RootHash must be 64 lower-case hex characters")
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now()
	}
	r.CreatedAt = normTime(r.CreatedAt)
	return &r, nil
}
