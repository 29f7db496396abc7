// Package negotiator is the federated negotiator (I.4.3): it negotiates a proposal's
// manifest with the regions it touches, round by round, until a quorum agrees, the
// offer is rejected, or the decision deadline passes (P6).
//
// A negotiation starts with StartNegotiation, which returns at once; the rounds run in
// the background and every vote and round transition is stored as it happens, so
// GetNegotiationStatus and WatchNegotiation report progress from the store and a
// restarted fabric resumes (or expires) what was running (Resume). Regions are agents
// (agents.go): in simulation in-process SimulatedAgents configured by regions.yaml. The
// quorum rules and the merge of counter-offers are pure functions (consensus.go).
package negotiator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/store"
)

// DefaultDecisionTimeout is PHASE_I4_DECISION_TIMEOUT_MS's default.
const DefaultDecisionTimeout = 30 * time.Second

// Deps are the negotiator's collaborators.
type Deps struct {
	// Store persists negotiations and votes (the negotiator's own tables). Required.
	Store store.Store
	// KeySeed derives the simulated regions' signing keys (regionkeys.SeedSize
	// bytes, see regionkeys.LoadOrCreateSeed). Required: it must survive
	// restarts, or resumed negotiations could not verify their regions' votes.
	KeySeed []byte
	// RegionKeys is the region key registry verifiers trust (internal/regionkeys):
	// every configured region must have a key there and its agent must sign
	// with it, or NewService fails (a certificate signed with any other key
	// would not verify). Each negotiation records the registry's keys and
	// checks every vote against them. Nil trusts the agents' own keys.
	RegionKeys *regionkeys.Registry
	// Logger; discards when nil.
	Logger *slog.Logger
	// Registerer receives the negotiator's metrics; a private registry when nil.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// DecisionTimeout bounds a negotiation whose request names neither deadline nor deadline_ms
	// (PHASE_I4_DECISION_TIMEOUT_MS); DefaultDecisionTimeout when <= 0.
	DecisionTimeout time.Duration
	// Regions are the regions, their state and the tenants' policy;
	// DefaultRegions() when nil.
	Regions *RegionsConfig
	// Agents replaces the simulated agent of a configured region (tests). Optional.
	Agents map[string]Agent
	// Federation, when set, replaces Regions, Agents and RegionKeys with the regions of
	// its registry, each asked over gRPC (federation.go). Optional.
	Federation *Federation
	// OnFinished, when set, is called once a negotiation this process ran
	// ended (AGREED, REJECTED or EXPIRED) and the outcome is stored, with the
	// final negotiation. ctx carries no caller identity and ends within
	// finishTimeout. It runs on the negotiation's goroutine: return promptly.
	OnFinished func(ctx context.Context, n *negotiatorv1.Negotiation)
}

// Service implements negotiatorv1.NegotiatorServiceServer.
type Service struct {
	negotiatorv1.UnimplementedNegotiatorServiceServer
	deps     Deps
	registry *regionkeys.Registry
	log      *slog.Logger
	agents   map[string]Agent
	metrics  *metrics
	hub      *hub

	// base is the parent of every negotiation's context; Close cancels it
	// with errClosing, which stops the rounds without ending negotiations.
	base context.Context
	stop context.CancelCauseFunc

	// conns are the connections to federated regions, closed by Close.
	conns []*grpc.ClientConn

	mu     sync.Mutex
	closed bool
	active map[string]bool // negotiation ids running in this process
	// pending are the votes of each running negotiation's current round, not
	// stored until the round ends (see run.go).
	pending map[string][]*store.NegotiationVote
	wg      sync.WaitGroup
}

// errClosing is the cause of the base context's cancellation on Close.
var errClosing = errors.New("negotiator: service closing")

// NewService returns the negotiator. It does not resume stored negotiations:
// call Resume once at start-up. Close stops its background work.
func NewService(deps Deps) (_ *Service, err error) {
	if deps.Store == nil {
		return nil, errors.New("negotiator: Deps.Store is required")
	}
	if len(deps.KeySeed) != regionkeys.SeedSize {
		return nil, fmt.Errorf("negotiator: Deps.KeySeed: want %d bytes (see regionkeys.LoadOrCreateSeed), got %d", regionkeys.SeedSize, len(deps.KeySeed))
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.DecisionTimeout <= 0 {
		deps.DecisionTimeout = DefaultDecisionTimeout
	}
	if deps.Regions == nil {
		deps.Regions = DefaultRegions()
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	var conns []*grpc.ClientConn
	if deps.Federation != nil {
		if conns, err = federate(&deps, m); err != nil {
			return nil, err
		}
		defer func() { // the connections live with the service, or not at all
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
			}
		}()
	}
	agents := map[string]Agent{}
	for _, r := range deps.Regions.Regions {
		if a, ok := deps.Agents[r.Name]; ok {
			agents[r.Name] = a
			continue
		}
		key, err := regionkeys.Derive(deps.KeySeed, r.Name)
		if err != nil {
			return nil, err
		}
		agents[r.Name] = NewSimulatedAgent(r, key, deps.Now)
	}
	for name, a := range deps.Agents {
		if _, ok := deps.Regions.Region(name); !ok {
			return nil, fmt.Errorf("negotiator: Deps.Agents[%q]: not a configured region", name)
		}
		if a.Region() != name {
			return nil, fmt.Errorf("negotiator: Deps.Agents[%q] speaks for region %q", name, a.Region())
		}
	}
	registry := deps.RegionKeys
	if registry == nil { // the agents' own keys: nothing to check them against
		own := make(map[string]ed25519.PublicKey, len(agents))
		for name, a := range agents {
			own[name] = a.PublicKey()
		}
		if registry, err = regionkeys.New(own); err != nil {
			return nil, fmt.Errorf("negotiator: %w", err)
		}
	} else {
		for _, r := range deps.Regions.Regions {
			if err := registry.Check(r.Name, agents[r.Name].PublicKey()); err != nil {
				return nil, fmt.Errorf("negotiator: region_keys_dir: %w", err)
			}
		}
	}
	base, stop := context.WithCancelCause(context.Background())
	return &Service{
		deps:     deps,
		registry: registry,
		log:      deps.Logger.With("service", fabric.Negotiator),
		agents:   agents,
		metrics:  m,
		hub:      newHub(),
		base:     base,
		stop:     stop,
		active:   map[string]bool{},
		pending:  map[string][]*store.NegotiationVote{},
		conns:    conns,
	}, nil
}

func (s *Service) now() time.Time { return s.deps.Now().UTC() }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string {
		return "/" + negotiatorv1.NegotiatorService_ServiceDesc.ServiceName + "/" + name
	}
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	def := server.Service{
		Name:     fabric.Negotiator,
		Register: func(g grpc.ServiceRegistrar) { negotiatorv1.RegisterNegotiatorServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return negotiatorv1.RegisterNegotiatorServiceHandlerClient(ctx, mux, negotiatorv1.NewNegotiatorServiceClient(conn))
		},
		Policy: auth.Policy{
			m("StartNegotiation"):     {auth.RoleProposer, auth.RoleService},
			m("GetNegotiationStatus"): readers,
			m("WatchNegotiation"):     readers,
		},
	}
	def.Validators = server.Validators{
		m("StartNegotiation"):     validateStart,
		m("GetNegotiationStatus"): func(req any) error { return validateID(req.(*negotiatorv1.GetNegotiationStatusRequest).GetId()) },
		m("WatchNegotiation"):     func(req any) error { return validateID(req.(*negotiatorv1.WatchNegotiationRequest).GetId()) },
	}
	def.Close = s.Close
	return def
}

// Close stops every negotiation this process runs and waits for their
// goroutines. Stopped negotiations stay RUNNING in the store, with every vote
// already cast, for Resume to pick up; nothing is marked EXPIRED by a
// shutdown. Close is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop(errClosing)
	s.wg.Wait()
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	s.conns = nil
	return errors.Join(errs...)
}

// StartNegotiation implements the RPC: it stores a RUNNING negotiation of the manifest
// the request carries and starts its rounds in the background (P6: async). It is
// idempotent per (tenant, proposal): a proposal that already has a negotiation gets it
// back, running or ended, and nothing new starts.
func (s *Service) StartNegotiation(ctx context.Context, req *negotiatorv1.StartNegotiationRequest) (*negotiatorv1.StartNegotiationResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	manifest := req.GetManifest()
	if manifest == nil { // the validator refuses it first; this guards direct calls
		return nil, status.Error(codes.InvalidArgument, "manifest is required")
	}
	offer, digest, err := manifestpkg.Canonical(manifest)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "manifest: %v", err)
	}
	if want := req.GetManifestSha256(); want != "" && want != digest {
		return nil, status.Errorf(codes.InvalidArgument,
			"manifest_sha256 %s is not the digest of the manifest (SHA-256 of its RFC 8785 canonical JSON is %s)", want, digest)
	}
	if out, err := s.existing(ctx, tenant, req.GetProposalId(), digest); out != nil || err != nil {
		return &negotiatorv1.StartNegotiationResponse{Negotiation: out}, err
	}
	if s.isClosed() {
		return nil, status.Error(codes.Unavailable, "the negotiator is shutting down; retry")
	}
	rule := req.GetQuorumRule()
	if rule == negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED {
		rule = s.deps.Regions.TenantRule(tenant)
	}
	now := s.now()
	deadline := now.Add(s.deps.DecisionTimeout)
	switch {
	case req.GetDeadline() != nil: // absolute: a retried start never extends it
		deadline = req.GetDeadline().AsTime().UTC()
	case req.GetDeadlineMs() > 0:
		deadline = now.Add(time.Duration(req.GetDeadlineMs()) * time.Millisecond)
	}
	if !deadline.After(now) {
		return nil, status.Errorf(codes.FailedPrecondition,
			"the deadline %s has passed; proposal %s is not negotiated", deadline.Format(time.RFC3339Nano), req.GetProposalId())
	}
	regions, err := s.participants(tenant, manifest)
	if err != nil {
		return nil, err
	}

	id := req.GetNegotiationId()
	if id == "" {
		id = ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
	}
	stored, err := s.deps.Store.Negotiations().Create(ctx, &store.Negotiation{
		ID:             id,
		TenantID:       tenant,
		ProposalID:     req.GetProposalId(),
		ProposalDigest: digest,
		State:          store.NegotiationRunning,
		QuorumRule:     qc.StoredRule(rule),
		Round:          1,
		MaxRounds:      s.deps.Regions.MaxRounds,
		Offer:          offer,
		Regions:        regions,
		Deadline:       deadline,
		CreatedAt:      now,
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		// A concurrent start of the same proposal won: answer with its negotiation.
		out, err := s.existing(ctx, tenant, req.GetProposalId(), digest)
		if out == nil && err == nil {
			err = fmt.Errorf("negotiator: negotiation of %s conflicts but cannot be read", req.GetProposalId())
		}
		return &negotiatorv1.StartNegotiationResponse{Negotiation: out}, err
	case errors.Is(err, store.ErrInvalid):
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	case err != nil:
		return nil, err
	}
	s.launch(stored) // when closing, Resume picks it up at the next start
	out, err := toProto(stored, nil, now)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "negotiation started", "negotiation_id", stored.ID, "tenant_id", tenant,
		"proposal_id", stored.ProposalID, "quorum_rule", qc.RuleName(rule), "regions", len(regions),
		"deadline", deadline, "time_left_ms", deadline.Sub(now).Milliseconds())
	return &negotiatorv1.StartNegotiationResponse{Negotiation: out}, nil
}

// existing is the tenant's negotiation of proposalID, or nil when it has none. One of
// another manifest (digest) is FAILED_PRECONDITION: a proposal is negotiated once.
func (s *Service) existing(ctx context.Context, tenant, proposalID, digest string) (*negotiatorv1.Negotiation, error) {
	ns, err := s.deps.Store.Negotiations().ListByProposal(ctx, tenant, proposalID, 1)
	if err != nil || len(ns) == 0 {
		return nil, err
	}
	if ns[0].ProposalDigest != digest {
		return nil, status.Errorf(codes.FailedPrecondition,
			"proposal %s is already negotiated (negotiation %s) with another manifest (digest %s, not %s)",
			proposalID, ns[0].ID, ns[0].ProposalDigest, digest)
	}
	// A running negotiation no process of ours runs was left by a negotiator that
	// stopped (the coordinator retrying the start has taken the proposal over): it
	// resumes here, within its own deadline.
	if n := ns[0]; n.State == store.NegotiationRunning && !s.isActive(n.ID) && s.now().Before(n.Deadline) {
		s.launch(n)
	}
	out, _, err := s.load(ctx, tenant, ns[0].ID)
	return out, err
}

// participants are the voting regions of tenant's negotiation of manifest, with
// the public keys that verify their votes.
func (s *Service) participants(tenant string, manifest *typesv1.Manifest) ([]store.NegotiationRegion, error) {
	allowed := s.deps.Regions.TenantRegions(tenant)
	names := manifest.GetRegions()
	if len(names) == 0 {
		names = allowed
	}
	out := make([]store.NegotiationRegion, 0, len(names))
	for i, name := range names {
		if !slices.Contains(allowed, name) {
			return nil, status.Errorf(codes.FailedPrecondition,
				"manifest.regions[%d] %q has no negotiating agent for this tenant (regions: %s)", i, redact.Echo(name), strings.Join(allowed, ", "))
		}
		if slices.ContainsFunc(out, func(r store.NegotiationRegion) bool { return r.Region == name }) {
			return nil, status.Errorf(codes.InvalidArgument, "manifest.regions[%d] %q: duplicate", i, redact.Echo(name))
		}
		cfg, _ := s.deps.Regions.Region(name)
		pub, _ := s.registry.Key(name) // NewService checked every configured region has one
		out = append(out, store.NegotiationRegion{Region: name, Weight: cfg.Weight, KeyID: regionkeys.KeyID(pub), PublicKey: regionkeys.PublicKeyPEM(pub)})
	}
	return out, nil
}

// GetNegotiationStatus implements the RPC; another tenant's negotiation is NOT_FOUND.
func (s *Service) GetNegotiationStatus(ctx context.Context, req *negotiatorv1.GetNegotiationStatusRequest) (*negotiatorv1.GetNegotiationStatusResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	out, _, err := s.load(ctx, tenant, req.GetId())
	if err != nil {
		return nil, err
	}
	return &negotiatorv1.GetNegotiationStatusResponse{Negotiation: out}, nil
}

// Watch timing: the store is polled for changes made by other processes and a
// message is sent at least every heartbeat, so time_left_ms keeps moving.
const (
	watchPoll      = 250 * time.Millisecond
	watchHeartbeat = time.Second
)

// WatchNegotiation implements the RPC: the current state, then one message per
// change, until the negotiation ends or the caller goes away.
func (s *Service) WatchNegotiation(req *negotiatorv1.WatchNegotiationRequest, stream grpc.ServerStreamingServer[negotiatorv1.WatchNegotiationResponse]) error {
	ctx := stream.Context()
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return err
	}
	changed, unsubscribe := s.hub.subscribe(req.GetId())
	defer unsubscribe()
	poll := time.NewTicker(watchPoll)
	defer poll.Stop()

	var lastKey string
	var lastSent time.Time
	for {
		n, key, err := s.load(ctx, tenant, req.GetId())
		if err != nil {
			return err
		}
		if key != lastKey || time.Since(lastSent) >= watchHeartbeat {
			if err := stream.Send(&negotiatorv1.WatchNegotiationResponse{Negotiation: n}); err != nil {
				return err
			}
			lastKey, lastSent = key, time.Now()
		}
		if n.GetState() != negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING {
			return nil
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-changed:
		case <-poll.C:
		}
	}
}

// orphanGrace is how long past its deadline a RUNNING negotiation that no
// process of ours runs may stay so before the background sweep expires it.
const orphanGrace = 5 * time.Second

// load reads a negotiation of tenant with its votes; it only reads (orphaned
// negotiations are ended by sweepOrphans). key changes whenever the content does.
func (s *Service) load(ctx context.Context, tenant, id string) (*negotiatorv1.Negotiation, string, error) {
	n, err := s.deps.Store.Negotiations().Get(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", status.Errorf(codes.NotFound, "negotiation %s not found", id)
	}
	if err != nil {
		return nil, "", err
	}
	votes, err := s.deps.Store.Negotiations().ListVotes(ctx, tenant, id)
	if err != nil {
		return nil, "", err
	}
	if n.State == store.NegotiationRunning { // the current round's votes, until it ends
		stored := map[string]bool{}
		for _, v := range votes {
			stored[fmt.Sprint(v.Round, "/", v.Region)] = true
		}
		for _, v := range s.getPending(id) {
			// Not yet stored: a round's votes land with its outcome, which a read racing
			// it may already see.
			if v.Round == n.Round && v.TenantID == tenant && !stored[fmt.Sprint(v.Round, "/", v.Region)] {
				votes = append(votes, v)
			}
		}
	}
	out, err := toProto(n, votes, s.now())
	if err != nil {
		return nil, "", err
	}
	return out, fmt.Sprintf("%d/%d", n.Version, len(votes)), nil
}

// Resume picks up the RUNNING negotiations of every tenant after a start: one
// past its deadline ends EXPIRED ("fabric restarted after the deadline"), any
// other continues its current round with the votes already stored. Call it
// once after NewService; negotiations already running here are skipped.
func (s *Service) Resume(ctx context.Context) error {
	var resumed, expired int
	after := ""
	for {
		page, err := s.deps.Store.Negotiations().ListRunning(ctx, after, store.DefaultListLimit)
		if err != nil {
			return fmt.Errorf("negotiator: resume: %w", err)
		}
		for _, n := range page {
			if !s.now().Before(n.Deadline) {
				s.finish(n, store.NegotiationExpired, nil, "fabric restarted after the deadline", nil)
				expired++
			} else if s.launch(n) {
				resumed++
			}
		}
		if len(page) < store.DefaultListLimit {
			break
		}
		after = page[len(page)-1].ID
	}
	s.log.InfoContext(ctx, "negotiations resumed", "resumed", resumed, "expired", expired)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(orphanGrace)
		defer t.Stop()
		for {
			select {
			case <-s.base.Done():
				return
			case <-t.C:
				s.sweepOrphans(s.base)
			}
		}
	}()
	return nil
}

// sweepOrphans ends the RUNNING negotiations past their deadline (plus grace) that no
// process of ours runs: their negotiator stopped and has not come back. It runs in the
// background, every orphanGrace; reads never end anything.
func (s *Service) sweepOrphans(ctx context.Context) {
	after := ""
	for {
		page, err := s.deps.Store.Negotiations().ListRunning(ctx, after, store.DefaultListLimit)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "negotiator: sweep orphaned negotiations", "error", err)
			}
			return
		}
		for _, n := range page {
			if s.now().After(n.Deadline.Add(orphanGrace)) && !s.isActive(n.ID) {
				s.finish(n, store.NegotiationExpired, nil, "the deadline passed while no negotiator was running it (its process stopped)", nil)
			}
		}
		if len(page) < store.DefaultListLimit {
			return
		}
		after = page[len(page)-1].ID
	}
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Service) isActive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[id]
}
