// Package store is the persistence layer of Decision Fabric.
//
// One [Store] interface has two backends: an embedded, pure-Go SQLite database
// (the default, for single-node installs and tests) and PostgreSQL via pgx (when
// [Config.PostgresDSN] is set). [Open] applies the embedded, versioned goose
// migrations of the chosen backend before returning, so a returned Store always
// has the current schema.
//
// Contracts shared by every method:
//
//   - Tenant scoping: every read and write names a tenant. A row of another
//     tenant is indistinguishable from a missing row ([ErrNotFound]); existence
//     is never leaked across tenants.
//   - Durability: when a method outside [Store.InTx] returns nil, its write is
//     committed (SQLite: synchronous=FULL in WAL mode; Postgres: COMMIT). Inside
//     InTx, writes become durable only when InTx itself returns nil.
//   - Errors: callers branch with errors.Is on [ErrNotFound], [ErrConflict] and
//     [ErrInvalid]; the driver error stays wrapped for logging.
//   - Time: timestamps are stored and returned in UTC, truncated to whole
//     microseconds, and round-trip identically on both backends.
//   - Inputs are never modified, except where a method documents it
//     ([SnapshotStore.Put]); results are fresh values owned by the caller.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors callers branch on with errors.Is. Errors returned by the
// store wrap one of these (and the driver error, when there is one).
var (
	// ErrNotFound: no such row for this tenant (or it belongs to another tenant).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: unique violation, stale version, or a guarded transition
	// whose precondition no longer holds.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid: the input breaks a documented field contract (bad ULID,
	// invalid JSON, hash mismatch, empty tenant, ...). Nothing was written.
	ErrInvalid = errors.New("store: invalid argument")
)

// Backend names returned by [Store.Backend].
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// DefaultListLimit is used by List methods when limit <= 0; MaxListLimit caps it.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// SQLiteFileName is the name of the SQLite database file inside Config.DataDir.
const SQLiteFileName = "fabric.db"

// Config selects and configures the backend.
type Config struct {
	PostgresDSN string // non-empty => Postgres backend
	DataDir     string // SQLite file lives at DataDir/fabric.db; the folder is created (0700) on first run
}

// Open picks the backend, connects, applies pending migrations (goose, embedded
// SQL) and returns the Store. Concurrent Opens of the same database (several
// processes starting at once) are safe: Postgres serialises migrations with a
// session advisory lock; SQLite serialises them with its write lock and
// retries a migration that lost the race.
func Open(ctx context.Context, cfg Config) (Store, error) {
	if cfg.PostgresDSN != "" {
		return openPostgres(ctx, cfg.PostgresDSN)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: Config.DataDir is required for the sqlite backend", ErrInvalid)
	}
	return openSQLite(ctx, cfg.DataDir)
}

// Store is the root of the persistence API. A Store returned by Open is safe
// for concurrent use; the Store passed to an InTx callback is not.
type Store interface {
	Backend() string // "sqlite" or "postgres"
	Ping(ctx context.Context) error
	// Close releases the connections. On a Store bound to a transaction it is a no-op.
	Close() error
	Proposals() ProposalStore
	Snapshots() SnapshotStore
	WorldStates() WorldStateStore
	Negotiations() NegotiationStore
	// AuditLog is the append-only audit log (internal/auditlog).
	AuditLog() AuditLogStore
	// Outbox holds audit events until the decision auditor has them.
	Outbox() OutboxStore
	// EventOutbox holds lifecycle events until a Kafka broker has them.
	EventOutbox() EventOutboxStore
	// MFA holds the hil-gateway's TOTP enrolments (internal/mfa).
	MFA() MFAStore
	// Approvals holds the hil-gateway's approval requests and notification outbox.
	Approvals() ApprovalStore
	// WebAuthn holds the hil-gateway's WebAuthn credentials and ceremony sessions.
	WebAuthn() WebAuthnStore
	// CanaryRuns holds the sim-canary's dry runs and canary rollouts.
	CanaryRuns() CanaryRunStore
	// InTx runs fn in one transaction; fn receives a Store bound to the tx.
	// It commits when fn returns nil and rolls back when fn returns an error
	// (returned unchanged, so errors.Is works on it) or panics (the panic is
	// re-raised after the rollback). Calling InTx on a tx-bound Store nests
	// with a SAVEPOINT: an inner error undoes only the inner work. When ctx ends
	// before the commit (the request's client went away), nothing is committed
	// and InTx returns ctx's error, even if fn succeeded; the same holds for a
	// single write outside InTx.
	//
	// On SQLite fn runs on the store's committer goroutine (group commit), not the
	// caller's: do not call t.FailNow or runtime.Goexit in it (the group is then
	// rolled back and fails). Inside fn use only the tx Store: on SQLite all writes share one
	// connection, so writing through the outer Store from fn blocks until ctx
	// ends. On Postgres the tx runs at READ COMMITTED, and a statement that
	// fails with a database error (e.g. a unique violation) aborts the rest of
	// the tx; wrap such a statement in a nested InTx to keep going.
	InTx(ctx context.Context, fn func(tx Store) error) error
}

// Proposal is a tenant's request to change the world, plus its lifecycle state.
type Proposal struct {
	ID             string    // ULID string (canonical upper-case), assigned by caller
	TenantID       string    // required
	Status         string    // e.g. "SUBMITTED"; required
	Impact         string    // "low" | "medium" | "high" | ""
	DryRun         bool      //
	Manifest       []byte    // canonical JSON (RFC 8785) bytes; required, stored byte-for-byte
	ManifestSHA256 string    // lower-case hex SHA-256 of Manifest; computed when "", verified otherwise
	Metadata       []byte    // JSON object bytes; "{}" when empty
	PreStateSHA256 string    // lower-case hex SHA-256, or ""
	IdempotencyKey string    // "" when none
	CreatedBy      string    // JWT subject, as the coordinator stores it (redacted)
	TraceID        string    //
	Version        int64     // optimistic concurrency; 1 on create, +1 per update (input ignored)
	CreatedAt      time.Time // UTC, set by store if zero
	UpdatedAt      time.Time // UTC; CreatedAt on create when zero, store clock on update
	// Decision is the coordinator's decision record (a JSON object; "{}" when
	// empty): negotiation outcome, agreed manifest, policy verdict, score, dry run.
	Decision []byte
	// PostStateSHA256 is the lower-case hex SHA-256 of the post-state, once enacted.
	PostStateSHA256 string
	// Action and Target are the manifest's "action" and "target" strings ("" when
	// absent), filled by the store on Create from Manifest (input ignored). They index
	// the history of similar decisions (ProposalStore.History).
	Action, Target string
	// ConsensusBundle is the proposal's signed consensus bundle (P2) as the coordinator
	// wrote it (a JSON object, returned byte for byte), or empty before the regions
	// agreed. Written by ProposalStore.Advance; kept apart from Decision so that the
	// transitions after agreement do not rewrite it.
	ConsensusBundle []byte
	// RequestSHA256 is the fingerprint of the request that created the proposal: the
	// lower-case hex SHA-256 of its canonical form, or "" (none recorded). An
	// Idempotency-Key replay is compared on it (the store only keeps it).
	RequestSHA256 string
	// LeaseOwner and LeaseUntil, on Create only, lease the new proposal to a
	// coordinator's lifecycle engine (see ProposalStore.ClaimWork); zero takes no
	// lease. They are not read back.
	LeaseOwner string
	LeaseUntil time.Time
}

// ProposalChange is the mutable part of a proposal written by ProposalStore.Advance.
type ProposalChange struct {
	Status          string
	DryRun          bool
	Decision        []byte // JSON object; "{}" when empty
	PostStateSHA256 string
	// ConsensusBundle, when not nil, sets the proposal's consensus bundle (a JSON
	// object); nil leaves it as it is.
	ConsensusBundle []byte
	// Impact, when not "", sets the proposal's impact ("low", "medium" or "high"):
	// the coordinator raises it when the change to be made is reclassified higher.
	Impact string
}

// ProposalStore persists proposals. All methods are tenant-scoped.
type ProposalStore interface {
	// Create inserts p (p itself is not modified). If p.IdempotencyKey != "" and
	// a proposal with the same (TenantID, IdempotencyKey) exists, Create returns
	// that existing proposal and created=false (no error) — the retry contract;
	// the existing row wins even if its other fields differ. This holds under
	// concurrency: of N racing Creates with one key exactly one gets created=true.
	// A duplicate ID is ErrConflict; a field-contract breach is ErrInvalid.
	Create(ctx context.Context, p *Proposal) (stored *Proposal, created bool, err error)
	// GetByIdempotencyKey returns the tenant's proposal created with key;
	// ErrNotFound if none (always for key "").
	GetByIdempotencyKey(ctx context.Context, tenantID, key string) (*Proposal, error)
	// Get is tenant-scoped: a proposal of another tenant is ErrNotFound (never leak existence).
	Get(ctx context.Context, tenantID, id string) (*Proposal, error)
	// List returns a tenant's proposals newest first (created_at, then id,
	// descending), optional status filter ("" = all), limit<=0 -> 100,
	// capped at MaxListLimit. No match is an empty slice, not an error.
	List(ctx context.Context, tenantID, status string, limit int) ([]*Proposal, error)
	// ListCreated returns a tenant's proposals created in [from, to), oldest first
	// (created_at, then id), limit<=0 -> 100, capped at MaxListLimit. It only reads.
	ListCreated(ctx context.Context, tenantID string, from, to time.Time, limit int) ([]*Proposal, error)
	// UpdateStatus moves a proposal from `from` to `to` only if its current status is `from` and its version
	// equals expectedVersion; otherwise ErrConflict (ErrNotFound if missing/other tenant). Returns the updated
	// row (Version+1, UpdatedAt = store clock). The check and the write are one atomic statement.
	UpdateStatus(ctx context.Context, tenantID, id, from, to string, expectedVersion int64) (*Proposal, error)
	// Advance is UpdateStatus that also writes the decision fields, in the same single
	// compare-and-swap statement and with the same errors.
	Advance(ctx context.Context, tenantID, id, from string, expectedVersion int64, c ProposalChange) (*Proposal, error)
	// History counts a tenant's most recent proposals similar to one being decided:
	// those with the given action (and target, unless target is "") whose status is one
	// of statuses, counting at most the newest limit of each status (limit<=0 or above
	// MaxListLimit -> MaxListLimit). The result maps status to count; statuses with no
	// match are absent. It reads an index, not the manifests.
	History(ctx context.Context, tenantID, action, target string, statuses []string, limit int) (map[string]int, error)
	// ClaimWork leases to owner, until until, at most limit proposals (of any tenant)
	// whose status is one of states and whose lease has ended before now or was never
	// taken, oldest first, and returns them. Concurrent claimers never get the same
	// proposal: Postgres skips rows another claimer holds (FOR UPDATE SKIP LOCKED), and
	// SQLite has one writer. A lease is not a change of the proposal: its version and
	// UpdatedAt stay as they are.
	ClaimWork(ctx context.Context, owner string, states []string, now, until time.Time, limit int) ([]*Proposal, error)
	// RenewLeases extends to until every lease owner holds on a proposal whose status
	// is one of states, and returns how many it extended.
	RenewLeases(ctx context.Context, owner string, states []string, until time.Time) (int64, error)
	// ReleaseLeases ends every lease owner holds, so another coordinator may claim
	// the proposals at once (a coordinator stopping).
	ReleaseLeases(ctx context.Context, owner string) error
}

// Snapshot is the captured state around a proposal's execution.
type Snapshot struct {
	ID         string // ULID (canonical upper-case)
	ProposalID string // must name an existing proposal of TenantID, else ErrNotFound
	TenantID   string
	Kind       string // "pre" | "post"
	SHA256     string // lower-case hex of sha256(State); computed when "", verified otherwise
	State      []byte // canonical JSON, stored byte-for-byte
	CreatedAt  time.Time
}

// SnapshotStore persists snapshots. All methods are tenant-scoped.
type SnapshotStore interface {
	// Put inserts s. (proposal_id, kind) is unique -> ErrConflict on duplicate.
	// On success Put fills in s.CreatedAt (store clock when zero, else
	// normalised to UTC microseconds) and s.SHA256 when it was empty.
	Put(ctx context.Context, s *Snapshot) error
	// List returns the proposal's snapshots ordered by created_at, id; empty if none.
	List(ctx context.Context, tenantID, proposalID string) ([]*Snapshot, error)
}

// WorldState is the (simulated or last observed) state of one target in one region for a tenant.
type WorldState struct {
	TenantID  string // required
	Region    string // may be "" (region-less target)
	Target    string // required
	State     []byte // canonical JSON, stored byte-for-byte
	Version   int64  // 1 on first put, +1 per put (input ignored)
	UpdatedAt time.Time
}

// WorldStateStore persists world states keyed by (TenantID, Region, Target).
type WorldStateStore interface {
	Get(ctx context.Context, tenantID, region, target string) (*WorldState, error) // ErrNotFound if none
	// GetRegions reads target in each of regions with one query: the result is in the
	// order of regions, nil where a region has no state.
	GetRegions(ctx context.Context, tenantID, target string, regions []string) ([]*WorldState, error)
	// Put upserts; if expectedVersion >= 0 it must match the current version (0 = must not exist) else ErrConflict.
	// expectedVersion < 0 writes unconditionally. ws is not modified; the stored row is returned
	// (UpdatedAt = ws.UpdatedAt when set, else store clock).
	Put(ctx context.Context, ws *WorldState, expectedVersion int64) (*WorldState, error)
}
