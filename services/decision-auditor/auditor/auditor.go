// Package auditor is the decision auditor (I.4.6): the tenant-scoped API of the
// append-only, tamper-evident audit log kept by internal/auditlog.
//
// GET /audit/{proposal_id} returns a proposal's entries with inclusion proofs in one
// signed checkpoint (Ed25519 note + ML-DSA-65); POST /snapshot/{proposal_id} records a
// pre or post snapshot hash; AppendEntry (gRPC only) is how services record lifecycle
// events; POST /audit/{proposal_id}/rollback-plan derives the plan that restores the
// pre-state from the recorded snapshot hashes; GET /audit/{proposal_id}/bundle exports a
// whole decision (its record and trail, internal/bundle) for offline verification.
// Nothing in the API changes or removes an entry, and no response carries a payload:
// only hashes and redacted summaries.
package auditor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/fabric"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/telemetry"
)

// Snapshot kinds (P7).
const (
	KindPre  = "pre"
	KindPost = "post"
)

// snapshotKeyPrefix starts the idempotency key of snapshot entries; AppendEntry
// refuses it, so only RecordSnapshot records snapshots.
const snapshotKeyPrefix = "snapshot:"

// Deps are the auditor's collaborators.
type Deps struct {
	// Store keeps the audit log. Required.
	Store store.Store
	// KeyDir holds the checkpoint signing keys (auditlog.Ed25519KeyFile and
	// auditlog.MLDSAKeyFile). In simulation they are created there on first use
	// (0600); otherwise they must exist (provision them with
	// `go run ./services/decision-auditor/cmd/audit-keygen -dir <dir>`). Required
	// unless Keys is set.
	KeyDir string
	// Ed25519KeyFile and MLDSAKeyFile, when set, are the key files' paths
	// instead of the defaults inside KeyDir (production: both must exist).
	Ed25519KeyFile, MLDSAKeyFile string
	// Keys replaces loading keys from files (tests). Optional.
	Keys *auditlog.Keys
	// Simulation: keys are created on first use, and rollback plans are
	// marked dry-run only.
	Simulation bool
	// Logger; discards when nil.
	Logger *slog.Logger
	// Registerer receives the audit log's metrics; a private registry when nil.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// CheckpointEvery and CheckpointInterval batch checkpoints (see
	// auditlog.Options); the auditlog defaults when zero.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// CheckpointFile, when set, is the append-only file each signed checkpoint is
	// published to (auditlog.Options.CheckpointFile): NewService fails when the
	// store is behind the last checkpoint in it.
	CheckpointFile string
	// Witness, when set, cosigns each checkpoint (internal/witness.Client).
	Witness auditlog.Cosigner
	// Decisions reads a decision record of a tenant for ExportDecision, from its
	// owner, the coordinator, through its API (the app wires GetProposal); an unknown proposal is
	// store.ErrNotFound. Nil: ExportDecision answers UNIMPLEMENTED.
	Decisions func(ctx context.Context, tenantID, proposalID string) (*bundle.Decision, error)
}

// Service implements auditorv1.AuditorServiceServer.
type Service struct {
	auditorv1.UnimplementedAuditorServiceServer
	deps Deps
	log  *auditlog.Log
	lg   *slog.Logger
}

// NewService returns the auditor over a running audit log. Close (the
// Definition's Close) stops the log after signing what is unsigned.
func NewService(deps Deps) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("auditor: Deps.Store is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	keys, err := loadKeys(deps)
	if err != nil {
		return nil, err
	}
	log, err := auditlog.New(auditlog.Options{
		Store: deps.Store, Keys: keys, Logger: deps.Logger, Registerer: deps.Registerer, Now: deps.Now,
		CheckpointEvery: deps.CheckpointEvery, CheckpointInterval: deps.CheckpointInterval,
		CheckpointFile: deps.CheckpointFile, Witness: deps.Witness,
	})
	if err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	return &Service{deps: deps, log: log, lg: deps.Logger.With("service", fabric.Auditor)}, nil
}

// loadKeys: explicit keys, else the files (created in simulation only).
func loadKeys(d Deps) (*auditlog.Keys, error) {
	if d.Keys != nil {
		return d.Keys, nil
	}
	if d.Ed25519KeyFile == "" && d.MLDSAKeyFile == "" {
		if d.KeyDir == "" {
			return nil, errors.New("auditor: Deps.KeyDir (or Deps.Keys) is required")
		}
		if d.Simulation {
			return auditlog.LoadOrCreateKeys(d.KeyDir)
		}
	}
	ed, ml := d.Ed25519KeyFile, d.MLDSAKeyFile
	if ed == "" {
		ed = filepath.Join(d.KeyDir, auditlog.Ed25519KeyFile)
	}
	if ml == "" {
		ml = filepath.Join(d.KeyDir, auditlog.MLDSAKeyFile)
	}
	k, err := auditlog.LoadKeys(ed, ml)
	if err != nil {
		return nil, fmt.Errorf("auditor: the audit checkpoint keys are required outside simulation "+
			"(create them with `go run ./services/decision-auditor/cmd/audit-keygen -dir %s`): %w", filepath.Dir(ed), err)
	}
	return k, nil
}

// Close stops the audit log. Idempotent.
func (s *Service) Close() error {
	return s.log.Close()
}

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + auditorv1.AuditorService_ServiceDesc.ServiceName + "/" + name }
	readers := []string{auth.RoleAuditor, auth.RoleProposer, auth.RoleApprover, auth.RoleService}
	def := server.Service{
		Name:     fabric.Auditor,
		Register: func(g grpc.ServiceRegistrar) { auditorv1.RegisterAuditorServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return auditorv1.RegisterAuditorServiceHandlerClient(ctx, mux, auditorv1.NewAuditorServiceClient(conn))
		},
		// Reading is open to every role of the tenant; writing only appends (nothing
		// changes or removes an entry), by the fabric's services alone.
		Policy: auth.Policy{
			m("GetAuditTrail"): readers,
			m("GetCheckpoint"): append(readers, auth.RoleAdmin),
			m("PlanRollback"):  readers,
			// Only the fabric's own services write (with their service identity): a
			// person or agent cannot add entries, nor front-run the coordinator's
			// snapshot references that rollback plans are computed from.
			m("RecordSnapshot"): {auth.RoleService},
			m("AppendEntry"):    {auth.RoleService},
			m("AppendEntries"):  {auth.RoleService},
			// A whole decision leaves the fabric in an export: auditors and admins only
			// (a role means exactly itself). The fabric's services never export: the
			// sim-canary's replay assembles the same document from what the service
			// identity may read (the coordinator's records and GetAuditTrail,
			// bundle.FromTrail) and verifies it the same way.
			m("ExportDecision"): {auth.RoleAuditor, auth.RoleAdmin},
		},
	}
	def.Validators = server.Validators{
		m("GetAuditTrail"):  func(req any) error { return validateProposalID(req.(*auditorv1.GetAuditTrailRequest).GetProposalId()) },
		m("PlanRollback"):   func(req any) error { return validateProposalID(req.(*auditorv1.PlanRollbackRequest).GetProposalId()) },
		m("RecordSnapshot"): func(req any) error { return validateSnapshot(req.(*auditorv1.RecordSnapshotRequest)) },
		m("AppendEntry"):    func(req any) error { return validateAppend(req.(*auditorv1.AppendEntryRequest)) },
		m("AppendEntries"):  func(req any) error { return validateAppendAll(req.(*auditorv1.AppendEntriesRequest)) },
		m("ExportDecision"): func(req any) error {
			return validateProposalID(req.(*auditorv1.ExportDecisionRequest).GetProposalId())
		},
	}
	def.Close = s.Close
	return def
}

func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func validateProposalID(id string) error {
	if !manifestpkg.ValidProposalRef(id) {
		return invalidArg("proposal_id must be 1-128 of A-Z a-z 0-9 . _ : - starting with a letter or digit")
	}
	return nil
}

func validateSnapshot(req *auditorv1.RecordSnapshotRequest) error {
	if err := validateProposalID(req.GetProposalId()); err != nil {
		return err
	}
	if k := req.GetKind(); k != KindPre && k != KindPost {
		return invalidArg("kind must be %q or %q", KindPre, KindPost)
	}
	if !canonical.IsSHA256Hex(req.GetSha256()) {
		return invalidArg("sha256 must be 64 lower-case hex characters (the SHA-256 of the canonical state)")
	}
	return validateOrigin(req.GetOnBehalfOf(), req.GetOriginTraceId())
}

// maxAppendEntries bounds one AppendEntries call.
const maxAppendEntries = 100

func validateAppendAll(req *auditorv1.AppendEntriesRequest) error {
	n := len(req.GetEntries())
	if n == 0 || n > maxAppendEntries {
		return invalidArg("entries: 1 to %d are required, got %d", maxAppendEntries, n)
	}
	for i, e := range req.GetEntries() {
		if err := validateAppend(e); err != nil {
			return invalidArg("entries[%d]: %s", i, status.Convert(err).Message())
		}
	}
	return nil
}

// validateOrigin checks the on-behalf-of fields of a relayed event.
func validateOrigin(onBehalfOf, traceID string) error {
	switch {
	case len(onBehalfOf) > 256 || strings.ContainsAny(onBehalfOf, "\r\n"):
		return invalidArg("on_behalf_of must be at most 256 characters on one line")
	case traceID != "" && !auditlog.ValidTraceID(traceID):
		return invalidArg("origin_trace_id must be 32 lower-case hex characters")
	}
	return nil
}

func validateAppend(req *auditorv1.AppendEntryRequest) error {
	if err := validateProposalID(req.GetProposalId()); err != nil {
		return err
	}
	switch ev, key := req.GetEvent(), req.GetIdempotencyKey(); {
	case !auditlog.ValidEventName(ev):
		return invalidArg("event must be lower-case dotted words, e.g. %q", auditlog.EventProposalEnacted)
	case ev == auditlog.EventSnapshotRecorded || strings.HasPrefix(key, snapshotKeyPrefix):
		return invalidArg("snapshots are recorded with RecordSnapshot (POST /snapshot/{proposal_id}), not AppendEntry")
	case key != "" && !auditlog.ValidIdempotencyKey(key):
		return invalidArg("idempotency_key must be 1-200 of A-Z a-z 0-9 . _ : / -")
	case req.GetPayloadSha256() != "" && !canonical.IsSHA256Hex(req.GetPayloadSha256()):
		return invalidArg("payload_sha256 must be 64 lower-case hex characters")
	case req.GetPayload() == nil && req.GetPayloadSha256() == "":
		return invalidArg("payload or payload_sha256 is required")
	}
	return validateOrigin(req.GetOnBehalfOf(), req.GetOriginTraceId())
}

// actor is who the caller is: the token's subject (the log redacts it).
func actor(ctx context.Context) string {
	if p := auth.FromContext(ctx); p != nil {
		return p.Subject
	}
	return ""
}

// origin is the actor and trace id an event is recorded with: the caller's own, or,
// for a fabric service relaying an event on behalf of the request that caused it, that
// request's principal and trace id.
func origin(ctx context.Context, onBehalfOf, traceID string) (string, string) {
	p := auth.FromContext(ctx)
	if onBehalfOf != "" && p != nil && slices.Contains(p.Roles, auth.RoleService) {
		if traceID == "" {
			traceID = telemetry.TraceID(ctx)
		}
		return onBehalfOf, traceID
	}
	return actor(ctx), telemetry.TraceID(ctx)
}

// fail maps the audit log's errors to statuses.
func fail(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auditlog.ErrNotFound):
		return status.Error(codes.NotFound, "nothing is recorded in the audit log for this proposal")
	case errors.Is(err, auditlog.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, auditlog.ErrCorrupt):
		// The detail (which entry) is in the log; the caller learns that the log is not
		// served because it does not verify.
		return status.Error(codes.DataLoss, "the audit log no longer verifies (an entry or checkpoint was altered); it is not served: run the audit verification")
	case errors.Is(err, auditlog.ErrBehind):
		return status.Error(codes.FailedPrecondition, "the audit log's store is behind a checkpoint the auditor published (entries were cut or rewritten); the auditor refuses to sign: run the audit verification")
	case errors.Is(err, auditlog.ErrClosed):
		return status.Error(codes.Unavailable, "the auditor is shutting down; retry")
	}
	return err
}

// GetAuditTrail implements the RPC.
func (s *Service) GetAuditTrail(ctx context.Context, req *auditorv1.GetAuditTrailRequest) (*auditorv1.GetAuditTrailResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	tr, err := s.log.Trail(ctx, tenant, req.GetProposalId())
	if err != nil {
		s.logFailure(ctx, "GetAuditTrail", err)
		return nil, fail(err)
	}
	return bundle.TrailResponse(tr, s.log.Verifier()), nil
}

// GetCheckpoint implements the RPC.
func (s *Service) GetCheckpoint(ctx context.Context, _ *auditorv1.GetCheckpointRequest) (*auditorv1.GetCheckpointResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.log.Checkpoint(ctx, tenant)
	if errors.Is(err, auditlog.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "the tenant's audit log has no entries yet")
	}
	if err != nil {
		s.logFailure(ctx, "GetCheckpoint", err)
		return nil, fail(err)
	}
	return &auditorv1.GetCheckpointResponse{Text: string(c.Text()), Checkpoint: auditlog.CheckpointProto(c, s.log.Verifier())}, nil
}

// ExportDecision implements the RPC: the decision record (manifest, signature,
// consensus bundle, approvals) and the proposal's audit trail with inclusion proofs
// in one signed checkpoint, as one document (internal/bundle.Assemble).
func (s *Service) ExportDecision(ctx context.Context, req *auditorv1.ExportDecisionRequest) (*auditorv1.ExportDecisionResponse, error) {
	if s.deps.Decisions == nil {
		return nil, server.Unimplemented(fabric.Auditor, "ExportDecision", "decision exports need the audit log and the decision records", 4)
	}
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Decisions(ctx, tenant, req.GetProposalId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "proposal not found")
	}
	if err != nil {
		return nil, err
	}
	tr, err := s.log.Trail(ctx, tenant, req.GetProposalId())
	if err != nil {
		s.logFailure(ctx, "ExportDecision", err)
		return nil, fail(err)
	}
	now := time.Now
	if s.deps.Now != nil {
		now = s.deps.Now
	}
	return bundle.Assemble(d, tr, s.log.Verifier(), now().UTC()), nil
}

// RecordSnapshot implements the RPC.
func (s *Service) RecordSnapshot(ctx context.Context, req *auditorv1.RecordSnapshotRequest) (*auditorv1.RecordSnapshotResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	who, trace := origin(ctx, req.GetOnBehalfOf(), req.GetOriginTraceId())
	e, created, err := s.log.Append(ctx, auditlog.Event{
		TenantID: tenant, ProposalID: req.GetProposalId(), Event: auditlog.EventSnapshotRecorded,
		Actor: who, TraceID: trace,
		Payload:        map[string]any{"kind": req.GetKind(), "sha256": req.GetSha256()},
		IdempotencyKey: snapshotKeyPrefix + req.GetProposalId() + ":" + req.GetKind(),
	})
	if err != nil {
		s.logFailure(ctx, "RecordSnapshot", err)
		return nil, fail(err)
	}
	if !created {
		return nil, status.Errorf(codes.AlreadyExists, "the %s snapshot of proposal %s is already recorded (audit entry %d)",
			req.GetKind(), req.GetProposalId(), e.Index)
	}
	return &auditorv1.RecordSnapshotResponse{Entry: auditlog.EntryProto(e, nil)}, nil
}

// AppendEntry implements the RPC.
func (s *Service) AppendEntry(ctx context.Context, req *auditorv1.AppendEntryRequest) (*auditorv1.AppendEntryResponse, error) {
	out, err := s.appendAll(ctx, "AppendEntry", []*auditorv1.AppendEntryRequest{req})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// AppendEntries implements the RPC.
func (s *Service) AppendEntries(ctx context.Context, req *auditorv1.AppendEntriesRequest) (*auditorv1.AppendEntriesResponse, error) {
	out, err := s.appendAll(ctx, "AppendEntries", req.GetEntries())
	if err != nil {
		return nil, err
	}
	return &auditorv1.AppendEntriesResponse{Results: out}, nil
}

// appendAll appends the caller's events in order, in one commit.
func (s *Service) appendAll(ctx context.Context, method string, reqs []*auditorv1.AppendEntryRequest) ([]*auditorv1.AppendEntryResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	events := make([]auditlog.Event, len(reqs))
	for i, req := range reqs {
		who, trace := origin(ctx, req.GetOnBehalfOf(), req.GetOriginTraceId())
		events[i] = auditlog.Event{
			TenantID: tenant, ProposalID: req.GetProposalId(), Event: req.GetEvent(),
			Actor: who, TraceID: trace,
			PayloadSHA256: req.GetPayloadSha256(), IdempotencyKey: req.GetIdempotencyKey(),
		}
		if p := req.GetPayload(); p != nil {
			events[i].Payload = p.AsMap()
		}
	}
	appended, err := s.log.AppendAll(ctx, events)
	if err != nil {
		s.logFailure(ctx, method, err)
		return nil, fail(err)
	}
	out := make([]*auditorv1.AppendEntryResponse, len(appended))
	for i, a := range appended {
		out[i] = &auditorv1.AppendEntryResponse{Entry: auditlog.EntryProto(a.Entry, nil), Created: a.Created}
	}
	return out, nil
}

// logFailure logs what the caller is not told (the entry that failed to
// verify); expected outcomes (not found, invalid) are not logged.
func (s *Service) logFailure(ctx context.Context, method string, err error) {
	if errors.Is(err, auditlog.ErrNotFound) || errors.Is(err, auditlog.ErrInvalid) {
		return
	}
	s.lg.ErrorContext(ctx, "audit log request failed", "method", method, "error", err)
}
