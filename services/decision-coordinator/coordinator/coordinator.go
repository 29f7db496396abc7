// Package coordinator is the decision coordinator (I.4.1): it accepts proposals, keeps
// their state machine and, with later issues, drives negotiation, scoring, approval and
// enactment.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/consent"
	"github.com/decision-fabric/fabric/internal/events"
	"github.com/decision-fabric/fabric/internal/fabric"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/telemetry"
	"github.com/decision-fabric/fabric/internal/world"
)

// Deps are the coordinator's collaborators.
type Deps struct {
	Store  store.Store
	World  world.Executor
	Policy *policy.Engine
	// Negotiator and Scorer are the other services, called by the lifecycle engine as
	// the fabric's service identity; nil leaves proposals SUBMITTED (or AGREED).
	Negotiator Negotiator
	Scorer     Scorer
	// Engine tunes the lifecycle engine (engine.go).
	Engine EngineConfig
	// TrustedKeys verify manifest and consent signatures (P2, P1).
	TrustedKeys *signing.Keyring
	// RequireSignature refuses unsigned manifests (production, SIMULATION_MODE=false).
	RequireSignature bool
	// RegionKeys is the region key registry (region -> PEM "PUBLIC KEY", see
	// internal/regionkeys): the only keys quorum certificates are verified with, before
	// a consensus bundle is signed and before enactment.
	RegionKeys map[string][]byte
	// Signer signs consensus bundles with the fabric's cosign-format key (the key the
	// composer signs manifests with); its public key must be in TrustedKeys. Nil makes
	// no bundles.
	Signer signing.Signer
	// RequireConsensusBundle refuses to enact or dry-run an agreed proposal without a
	// consensus bundle (production, SIMULATION_MODE=false). A bundle that is present is
	// always verified.
	RequireConsensusBundle bool
	// Approvals is the hil-gateway, asked to notify approvers when a proposal waits for
	// approval; nil notifies nobody (the proposal still waits, and expires).
	Approvals Approvals
	// Audit receives every lifecycle event (the decision auditor); nil records none.
	Audit Auditor
	// Events publishes every committed transition to Kafka (internal/events): each is
	// staged in the event outbox in the transition's transaction and this relay
	// publishes it. Nil (no KAFKA_URL) stages none. The coordinator starts and closes it.
	Events *events.Relay
	// DecisionTimeout is the default negotiation deadline (P6) when the policy sets none.
	DecisionTimeout time.Duration
	Logger          *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Registerer receives the coordinator's metrics; nil exports none.
	Registerer prometheus.Registerer
}

// Service implements coordinatorv1.CoordinatorServiceServer.
type Service struct {
	coordinatorv1.UnimplementedCoordinatorServiceServer
	deps    Deps
	relay   *relay // delivers audit events the request path could not; nil without an auditor
	metrics *metrics
	// verified are the consensus bundles whose content this coordinator checked against
	// its trust (deps.TrustedKeys, deps.RegionKeys): sealed here or verified before.
	verified *lru.Cache[verifiedKey, *bundle.Consensus]
	engine   *engine // nil without a negotiator, or when disabled
	changes  changes // wakes long polls
}

// New returns the coordinator. With an auditor it starts the audit outbox relay; Close
// stops it.
func New(deps Deps) (*Service, error) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{deps: deps, metrics: m, verified: mustLRU[verifiedKey, *bundle.Consensus](4096)}
	if deps.Audit != nil && deps.Store != nil {
		s.relay = newRelay(s)
		go s.relay.run()
	}
	if deps.Events != nil {
		deps.Events.Start()
	}
	if deps.Negotiator != nil && deps.Store != nil && !deps.Engine.Disabled {
		s.engine = newEngine(s, deps.Engine)
		s.engine.start()
	}
	return s, nil
}

// Close stops the lifecycle engine (its leases are released for another coordinator)
// and the background audit relay. Events it had not delivered stay in the outbox for
// the next start.
func (s *Service) Close() error {
	if s.engine != nil {
		s.engine.close()
	}
	if s.relay != nil {
		s.relay.close()
	}
	if s.deps.Events != nil {
		s.deps.Events.Close()
	}
	return nil
}

// kickEvents asks the event relay to publish what a commit staged.
func (s *Service) kickEvents() {
	if s.deps.Events != nil {
		s.deps.Events.Kick()
	}
}

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string {
		return "/" + coordinatorv1.CoordinatorService_ServiceDesc.ServiceName + "/" + name
	}
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	return server.Service{
		Name:     fabric.Coordinator,
		Register: func(g grpc.ServiceRegistrar) { coordinatorv1.RegisterCoordinatorServiceServer(g, s) },
		Close:    s.Close,
		Checks:   s.healthChecks,
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return coordinatorv1.RegisterCoordinatorServiceHandlerClient(ctx, mux, coordinatorv1.NewCoordinatorServiceClient(conn))
		},
		Policy: auth.Policy{
			m("SubmitProposal"):   {auth.RoleProposer, auth.RoleService},
			m("GetProposal"):      readers,
			m("ListProposals"):    readers,
			m("EnactProposal"):    {auth.RoleProposer, auth.RoleService},
			m("RollbackProposal"): {auth.RoleProposer, auth.RoleService},
			m("DescribeChange"):   readers,
			m("RecordApproval"):   {auth.RoleService},
			// The sim-canary's whole-chain dry run, as the service identity.
			m("RehearseEnactment"): {auth.RoleService},
			// Canary rollouts: the sim-canary, as the service identity.
			m("EnactCanaryStage"):  {auth.RoleService},
			m("RollbackCanaryRun"): {auth.RoleService},
			m("CompleteCanaryRun"): {auth.RoleService},
			// Replays (sim-canary) read decision records with their inputs (decisions.go).
			m("ListDecisionRecords"): {auth.RoleAuditor, auth.RoleService},
		},
		Validators: server.Validators{
			m("SubmitProposal"):      validateSubmit,
			m("GetProposal"):         validateGet,
			m("ListProposals"):       validateList,
			m("EnactProposal"):       validateEnact,
			m("RollbackProposal"):    validateRollback,
			m("DescribeChange"):      validateDescribeChange,
			m("RecordApproval"):      validateRecordApproval,
			m("RehearseEnactment"):   validateRehearse,
			m("EnactCanaryStage"):    validateCanaryStage,
			m("RollbackCanaryRun"):   validateCanaryRollback,
			m("CompleteCanaryRun"):   validateCanaryComplete,
			m("ListDecisionRecords"): validateListDecisionRecords,
		},
	}
}

// SubmitProposal implements the RPC: P5 tenant check, Idempotency-Key replay (see
// replay: the same request gets its first answer, another request under the same key
// 422), P1 PII check, impact and dry-run defaults (P3), pre-state snapshot with SHA256
// (P7), one transaction for the proposal and its pre snapshot.
func (s *Service) SubmitProposal(ctx context.Context, req *coordinatorv1.SubmitProposalRequest) (*coordinatorv1.SubmitProposalResponse, error) {
	if err := auth.RequireTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	key := idempotencyKey(ctx)
	if err := validateIdempotencyKey(key); err != nil {
		return nil, err
	}
	fingerprint, err := requestFingerprint(req)
	if err != nil {
		return nil, err
	}
	if key != "" {
		key = storedKey(req.GetTenantId(), key)
		prev, err := s.deps.Store.Proposals().GetByIdempotencyKey(ctx, req.GetTenantId(), key)
		switch {
		case err == nil:
			return s.replay(ctx, prev, fingerprint)
		case !errors.Is(err, store.ErrNotFound):
			return nil, storeError(err)
		}
	}
	// The manifest is canonicalised once: the signature is checked on these bytes,
	// and they are what is stored and hashed.
	manifestJSON, manifestSHA256, err := manifestpkg.Canonical(req.GetManifest())
	if err != nil {
		return nil, fmt.Errorf("coordinator: canonical manifest: %w", err)
	}
	signature, err := s.verifyCanonicalManifest(req, manifestJSON)
	if err != nil {
		return nil, err
	}
	manifest, err := s.personalData(req)
	if err != nil {
		return nil, err
	}
	metadataJSON := []byte("{}")
	if md := req.GetMetadata(); md != nil {
		if metadataJSON, err = canonical.Proto(md); err != nil {
			return nil, fmt.Errorf("coordinator: canonical metadata: %w", err)
		}
	}
	// The pre-state is read before the transaction: the world provider is not part of
	// the store's transaction (a real one is a cluster API), and a replayed request
	// simply discards the reading.
	pre, err := s.deps.World.Read(ctx, req.GetTenantId(), manifest.GetTarget(), manifest.GetRegions())
	if err != nil {
		return nil, err
	}
	pol, err := s.evaluatePolicy(ctx, req.GetTenantId(), manifest, pre)
	if err != nil {
		return nil, submissionPolicyError(err)
	}
	record, err := decisionJSON(&coordinatorv1.Proposal{Policy: pol.record, ManifestSignature: signature})
	if err != nil {
		return nil, err
	}
	impact := pol.decision.Impact
	dryRun := req.GetDryRun() || pol.decision.DryRunDefault // P3: high impact is dry-run until approved

	principal := auth.FromContext(ctx)
	now := s.deps.Now().UTC()
	id := newID(now)

	planned := &store.Proposal{
		ID:             id,
		TenantID:       req.GetTenantId(),
		Status:         statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED),
		Impact:         impact,
		DryRun:         dryRun,
		Manifest:       manifestJSON,
		ManifestSHA256: manifestSHA256,
		Metadata:       metadataJSON,
		PreStateSHA256: pre.SHA256,
		Decision:       record,
		IdempotencyKey: key,
		RequestSHA256:  fingerprint,
		CreatedBy:      principal.Actor(),
		TraceID:        telemetry.TraceID(ctx),
		CreatedAt:      now,
		Version:        1,
	}
	entries, err := s.outboxEntries(ctx, planned.TenantID, planned.ID,
		transitionAudit(planned, "proposal.submitted", map[string]any{
			"manifest_sha256": planned.ManifestSHA256, "pre_state_sha256": planned.PreStateSHA256,
			"impact": planned.Impact, "dry_run": planned.DryRun, "signed": req.GetSignature() != nil,
		}),
		snapshotAudit(planned, "pre", planned.PreStateSHA256))
	if err != nil {
		return nil, err
	}
	preSnap := &store.Snapshot{ID: newID(now), ProposalID: id, TenantID: planned.TenantID, Kind: "pre",
		SHA256: pre.SHA256, State: pre.JSON, CreatedAt: now}
	// With a lifecycle engine, the submission is leased to this process's engine and
	// moved to NEGOTIATING (the negotiation's id chosen and recorded) in the same
	// commit: the engine starts the negotiation at once, at no extra commit.
	var negotiating *plannedMove
	if s.engine != nil {
		planned.LeaseOwner, planned.LeaseUntil = s.engine.cfg.Owner, s.engine.leaseUntil()
		st := negotiationMove(now)
		shared, err := decision(planned)
		if err != nil {
			return nil, err
		}
		if negotiating, err = planMoveFrom(planned, shared, st.to, st.edit, st.cols); err != nil {
			return nil, err
		}
		more, err := s.outboxEntries(ctx, planned.TenantID, planned.ID,
			transitionAudit(negotiating.next, transitionEvent(stNegotiating), transitionPayload(planned.Status, negotiating.next, negotiating.d)))
		if err != nil {
			return nil, err
		}
		entries = append(entries, more...)
	}
	var stored *store.Proposal
	var created bool
	var staged []*store.OutboxEntry
	// A client that went away is not answered, so nothing is stored for it: checked
	// here, and again by the store before it commits (InTx with the request's ctx).
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	err = s.deps.Store.InTx(ctx, func(tx store.Store) error {
		var err error
		stored, created, err = tx.Proposals().Create(ctx, planned)
		if err != nil || !created {
			return err // a replay keeps the first request's snapshot
		}
		if err := tx.Snapshots().Put(ctx, preSnap); err != nil {
			return err
		}
		if err := s.stageEvent(ctx, tx, "", stored, ""); err != nil {
			return err
		}
		if negotiating != nil {
			if stored, err = s.applyMove(ctx, tx, stored, negotiating); err != nil {
				return err
			}
		}
		staged, err = stageIn(ctx, tx, entries)
		return err
	})
	if err != nil {
		return nil, storeError(err)
	}
	if !created { // a concurrent request with the same key won the insert
		return s.replay(ctx, stored, fingerprint)
	}
	if negotiating != nil {
		remember(stored, negotiating)
	}
	s.deliver(ctx, staged)
	s.kickEvents()
	if s.engine != nil {
		s.engine.drive(stored)
	}
	out, err := toProto(stored)
	if err != nil {
		return nil, err
	}
	s.deps.Logger.InfoContext(ctx, "proposal submitted", "proposal_id", stored.ID, "tenant_id", stored.TenantID,
		"impact", impact, "dry_run", dryRun, "pre_state_sha256", stored.PreStateSHA256)
	return &coordinatorv1.SubmitProposalResponse{Proposal: out, Created: true}, nil
}

// callersProposal is proposal id of the caller's tenant (another tenant's is NOT_FOUND).
func (s *Service) callersProposal(ctx context.Context, id string) (*store.Proposal, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.deps.Store.Proposals().Get(ctx, tenant, id)
	if err != nil {
		return nil, storeError(err)
	}
	return p, nil
}

// GetProposal implements the RPC; another tenant's proposal is NOT_FOUND.
func (s *Service) GetProposal(ctx context.Context, req *coordinatorv1.GetProposalRequest) (*coordinatorv1.GetProposalResponse, error) {
	p, err := s.callersProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if wait := time.Duration(req.GetWaitMs()) * time.Millisecond; wait > 0 && inEngineState(p.Status) {
		p = s.awaitChange(ctx, p, wait)
	}
	out, err := toProto(p)
	if err != nil {
		return nil, err
	}
	return &coordinatorv1.GetProposalResponse{Proposal: out}, nil
}

// ListProposals implements the RPC for the caller's tenant.
func (s *Service) ListProposals(ctx context.Context, req *coordinatorv1.ListProposalsRequest) (*coordinatorv1.ListProposalsResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	filter := ""
	if req.GetStatus() != coordinatorv1.ProposalStatus_PROPOSAL_STATUS_UNSPECIFIED {
		filter = statusString(req.GetStatus())
	}
	ps, err := s.deps.Store.Proposals().List(ctx, tenant, filter, int(req.GetLimit()))
	if err != nil {
		return nil, storeError(err)
	}
	resp := &coordinatorv1.ListProposalsResponse{Proposals: make([]*coordinatorv1.Proposal, 0, len(ps))}
	for _, p := range ps {
		out, err := toProto(p)
		if err != nil {
			return nil, err
		}
		resp.Proposals = append(resp.Proposals, out)
	}
	return resp, nil
}

// changePoll is how often a long poll reads the proposal again, for moves made by
// another coordinator process (this process's moves wake it at once).
const changePoll = 250 * time.Millisecond

// awaitChange is GetProposal's long poll: it returns p as soon as it has changed
// (version), or as it stands after wait. It only reads.
func (s *Service) awaitChange(ctx context.Context, p *store.Proposal, wait time.Duration) *store.Proposal {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	poll := time.NewTicker(changePoll)
	defer poll.Stop()
	for {
		next, woken := s.readOrWait(ctx, p, timer.C, poll.C)
		if next != nil {
			return next
		}
		if !woken {
			return p
		}
	}
}

// readOrWait reads p again, with a watch on it taken first so that no change is
// missed in between: it returns the proposal when its version changed, else waits for
// a change here, the next poll or the end (woken false: ctx or the wait ended).
func (s *Service) readOrWait(ctx context.Context, p *store.Proposal, end, poll <-chan time.Time) (next *store.Proposal, woken bool) {
	changed, release := s.changes.watch(p.ID)
	defer release()
	fresh, err := s.deps.Store.Proposals().Get(ctx, p.TenantID, p.ID)
	if err != nil {
		return nil, false
	}
	if fresh.Version != p.Version {
		return fresh, true
	}
	select {
	case <-ctx.Done():
		return nil, false
	case <-end:
		return nil, false
	case <-changed:
	case <-poll:
	}
	return nil, true
}

// EnactProposal implements the RPC: a dry run on request (or while P3 still requires
// one), otherwise a real enactment with pre/post snapshots.
func (s *Service) EnactProposal(ctx context.Context, req *coordinatorv1.EnactProposalRequest) (*coordinatorv1.EnactProposalResponse, error) {
	p, err := s.callersProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	d, err := decision(p)
	if err != nil {
		return nil, err
	}
	if err := notReady(p, d); err != nil {
		return nil, err
	}
	if err := s.verifyConsensus(p, d); err != nil {
		return nil, err
	}
	now := s.deps.Now()
	if req.GetDryRun() {
		next, pre, err := s.dryRun(ctx, p)
		if err != nil {
			return nil, err
		}
		return s.enactResponse(next, pre, nil, now)
	}
	if err := s.readyToEnact(p, d); err != nil {
		return nil, err
	}
	next, pre, post, err := s.enact(ctx, p)
	if err != nil {
		return nil, err
	}
	s.deps.Logger.InfoContext(ctx, "proposal enacted", "proposal_id", p.ID, "tenant_id", p.TenantID,
		"pre_state_sha256", pre.SHA256, "post_state_sha256", post.SHA256)
	return s.enactResponse(next, pre, &post, now)
}

func (s *Service) enactResponse(p *store.Proposal, pre world.Snapshot, post *world.Snapshot, at time.Time) (*coordinatorv1.EnactProposalResponse, error) {
	out, err := toProto(p)
	if err != nil {
		return nil, err
	}
	resp := &coordinatorv1.EnactProposalResponse{Proposal: out}
	if resp.Pre, err = snapshotProto("pre", pre, at); err != nil {
		return nil, err
	}
	if post != nil {
		if resp.Post, err = snapshotProto("post", *post, at); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// RollbackProposal implements the RPC (P7).
func (s *Service) RollbackProposal(ctx context.Context, req *coordinatorv1.RollbackProposalRequest) (*coordinatorv1.RollbackProposalResponse, error) {
	p, err := s.callersProposal(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	next, restored, err := s.rollback(ctx, p)
	if err != nil {
		return nil, err
	}
	out, err := toProto(next)
	if err != nil {
		return nil, err
	}
	snap, err := snapshotProto("pre", restored, s.deps.Now())
	if err != nil {
		return nil, err
	}
	s.deps.Logger.InfoContext(ctx, "proposal rolled back", "proposal_id", p.ID, "tenant_id", p.TenantID, "restored_sha256", restored.SHA256)
	return &coordinatorv1.RollbackProposalResponse{Proposal: out, Restored: snap}, nil
}

// checkPersonalData enforces P1 on the manifest and metadata without consent: personal
// data is refused with PERMISSION_DENIED (HTTP 403) and nothing is stored; secrets are
// refused with INVALID_ARGUMENT (reference them, never embed them). The error names where
// and what kind, never the value. allow lists consented PII kinds.
func checkPersonalData(req *coordinatorv1.SubmitProposalRequest, allow map[redact.Kind]bool) error {
	var pii, secrets []string
	for _, part := range []struct {
		prefix string
		value  any
	}{
		{"manifest", manifestAsMap(req.GetManifest())},
		{"metadata", req.GetMetadata().AsMap()},
	} {
		_, notes := redact.Value(part.value, redact.Policy{Allow: allow})
		for _, n := range notes {
			path, kind, _ := strings.Cut(n, ": ")
			where := part.prefix + "." + path
			if redact.IsSecretKind(redact.Kind(kind)) {
				secrets = append(secrets, where+" ("+kind+")")
			} else {
				pii = append(pii, where+" ("+kind+")")
			}
		}
	}
	if len(secrets) > 0 {
		return status.Errorf(codes.InvalidArgument, "secrets must not be embedded in a proposal; reference them instead: %s", strings.Join(secrets, ", "))
	}
	if len(pii) > 0 {
		return status.Errorf(codes.PermissionDenied, "personal data without recorded consent (P1): %s; redact it or attach a signed consent covering it", strings.Join(pii, ", "))
	}
	return nil
}

// personalData applies P1 and returns the manifest to store. A consent, when the
// manifest carries one, must verify (consent.Verify: complete and signed by a trusted
// key) whether or not there is personal data to exempt: an unverified consent is
// refused with PERMISSION_DENIED, never stored. Its own fields were checked for
// personal data with the manifest (manifest.Validate, consent.Check). Without consent
// any personal data is refused; with a verified consent the consented kinds are kept
// and anything else is still refused.
func (s *Service) personalData(req *coordinatorv1.SubmitProposalRequest) (*typesv1.Manifest, error) {
	var allow map[redact.Kind]bool
	if c := req.GetManifest().GetConsent(); c != nil {
		pol, err := consent.Verify(s.deps.TrustedKeys, c)
		if err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "manifest.consent: %v", err)
		}
		allow = pol.Allow
	}
	if err := checkPersonalData(req, allow); err != nil {
		return nil, err
	}
	return req.GetManifest(), nil
}

// manifestAsMap renders a manifest as JSON-like data for the PII scan.
func manifestAsMap(m *typesv1.Manifest) map[string]any {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(raw, s); err != nil {
		return nil
	}
	out := s.AsMap()
	delete(out, "consent")
	return out
}

// newID is a ULID for t.
func newID(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}

// idempotencyKey reads the Idempotency-Key header (gRPC metadata "idempotency-key").
func idempotencyKey(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("idempotency-key"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// storeError maps store sentinels to gRPC codes; anything else is left for the error
// masking interceptor (logged, INTERNAL).
func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "proposal not found")
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.Aborted, "concurrent update; retry")
	case errors.Is(err, store.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return err
}
