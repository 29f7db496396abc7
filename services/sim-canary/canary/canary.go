// Package canary is the simulation and canary runner (I.4.7). It owns one table,
// canary_runs (store.CanaryRunStore), and reaches every other service through its gRPC
// contract as the fabric's service identity, for the caller's tenant.
//
// A whole-chain dry run (RunCanary with dry_run) is synchronous (dryrun.go): the
// proposal is read from the coordinator, then the chain is rehearsed step by step —
// policy (coordinator RehearseEnactment on the submitted manifest), negotiation
// (negotiator RehearseNegotiation: the regions' agents in memory), score (scorer Score,
// which owns no table), approvals (the rules and who may approve, from
// RehearseEnactment), dry-run enactment on a copy of the world (RehearseEnactment on
// the agreed manifest: diff, pre-state hash, predicted post-state hash) and the audit
// entries the chain would write. None of those calls writes; the run, with its
// scorecard (P1..P7 checks and a recommendation), is the only row stored.
//
// A canary rollout (dry_run false, rollout.go) enacts the proposal's regions in waves
// through the coordinator, judges each wave against its baseline with internal/judge
// on metrics from internal/metricsource, and promotes, holds or rolls back; StopCanary
// is the emergency stop.
package canary

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/judge"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/metricsource"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/store"
)

// Deps are the service's dependencies.
type Deps struct {
	// Store holds canary_runs (the only table the service touches). Required.
	Store store.Store
	// The peers, called through their gRPC contracts. Required.
	Coordinator coordinatorv1.CoordinatorServiceClient
	Negotiator  negotiatorv1.NegotiatorServiceClient
	Scorer      scorerv1.ScorerServiceClient
	// As returns ctx carrying the identity peer calls are made with for tenant: the
	// fabric's service identity (the rehearsal RPCs are open to it alone). Required.
	As func(ctx context.Context, tenant string) context.Context
	// Logger; discards when nil.
	Logger *slog.Logger
	// Registerer receives the canary metrics; a private registry when nil.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// Canary rollouts.

	// Auditor receives the rollouts' verdicts (AppendEntry, as the service identity).
	// Required.
	Auditor auditorv1.AuditorServiceClient
	// Metrics are read for the judge. Required.
	Metrics metricsource.SeriesSource
	// Judge configures the judgement of a wave; DefaultJudgeConfig() when it has no
	// metrics.
	Judge judge.Config
	// TenantJudge replaces Judge for the tenants listed (config canary.tenants).
	TenantJudge map[string]judge.Config
	// Window and Step are the metrics' window and resolution; 10 minutes and 30
	// seconds when zero.
	Window, Step time.Duration
	// Settle is how long a wave runs before it is judged (0: at once, as in simulation,
	// where the metrics do not need time to accumulate).
	Settle time.Duration
	// Lease is how long this process's claim on a rollout it drives lasts without
	// renewal (renewed every third of it): replicas sharing the store drive each
	// rollout from one process, and take over those of a stopped one once its lease
	// ends. 15 seconds when zero.
	Lease time.Duration
}

// Service implements canaryv1.CanaryServiceServer.
type Service struct {
	canaryv1.UnimplementedCanaryServiceServer
	deps    Deps
	replay  *ReplayDeps // set by WithReplay (replay.go)
	metrics *metrics

	// base is the parent of every rollout's context; Close cancels it.
	base   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	active map[string]activeRun // rollouts this process drives, by run id
	wg     sync.WaitGroup
	// owner names this process in the rollouts' leases.
	owner     string
	watchOnce sync.Once
}

// activeRun is a rollout driven by this process.
type activeRun struct {
	cancel context.CancelFunc
	done   <-chan struct{}
}

// New returns the service.
func New(deps Deps) (*Service, error) {
	if deps.Store == nil || deps.Coordinator == nil || deps.Negotiator == nil || deps.Scorer == nil || deps.As == nil ||
		deps.Auditor == nil || deps.Metrics == nil {
		return nil, errors.New("canary: Deps.Store, Coordinator, Negotiator, Scorer, Auditor, Metrics and As are required")
	}
	if len(deps.Judge.Metrics) == 0 {
		deps.Judge = DefaultJudgeConfig()
	}
	if err := deps.Judge.Validate(); err != nil {
		return nil, fmt.Errorf("canary: %w", err)
	}
	for tenant, cfg := range deps.TenantJudge {
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("canary: tenant %s: %w", tenant, err)
		}
	}
	if deps.Window <= 0 {
		deps.Window = 10 * time.Minute
	}
	if deps.Step <= 0 {
		deps.Step = 30 * time.Second
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
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	if deps.Lease <= 0 {
		deps.Lease = 15 * time.Second
	}
	base, cancel := context.WithCancel(context.Background())
	return &Service{deps: deps, metrics: m, base: base, cancel: cancel, active: map[string]activeRun{}, owner: leaseOwner()}, nil
}

// leaseOwner is a name for this process, unique among the replicas: host, pid and a
// random part (a restarted process is another owner).
func leaseOwner() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Close stops the rollouts this process drives (they stay RUNNING in the store: a stop
// rolls them back) and waits for them.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	// Another replica takes the rollouts over at once instead of after their leases.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.deps.Store.CanaryRuns().ReleaseLeases(ctx, s.owner); err != nil {
		s.deps.Logger.Warn("canary: release the rollouts' leases", "error", err)
	}
	return nil
}

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + canaryv1.CanaryService_ServiceDesc.ServiceName + "/" + name }
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	return server.Service{
		Name:     fabric.Canary,
		Register: func(g grpc.ServiceRegistrar) { canaryv1.RegisterCanaryServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return canaryv1.RegisterCanaryServiceHandlerClient(ctx, mux, canaryv1.NewCanaryServiceClient(conn))
		},
		Policy: auth.Policy{
			m("RunCanary"):       {auth.RoleProposer, auth.RoleService},
			m("GetCanaryResult"): readers,
			// The emergency stop: whoever may start a run (an admin holds every tenant role).
			m("StopCanary"): {auth.RoleProposer, auth.RoleService},
			m("Replay"):     {auth.RoleAuditor, auth.RoleAdmin},
		},
		Validators: server.Validators{
			m("RunCanary"):       validateRun,
			m("GetCanaryResult"): func(req any) error { return validateRunID(req.(*canaryv1.GetCanaryResultRequest).GetId()) },
			m("StopCanary"):      validateStop,
		},
		Close: s.Close,
	}
}

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

func validateRun(req any) error {
	r := req.(*canaryv1.RunCanaryRequest)
	switch id := r.GetProposalId(); {
	case id == "":
		return invalid("proposal_id is required")
	case !manifestpkg.ValidProposalID(id):
		return invalid("proposal_id: want the proposal's id (a ULID), got %d characters", len(id))
	}
	return nil
}

func validateStop(req any) error {
	r := req.(*canaryv1.StopCanaryRequest)
	if len([]rune(r.GetReason())) > MaxStopReason {
		return invalid("reason: at most %d characters", MaxStopReason)
	}
	return validateRunID(r.GetId())
}

func validateRunID(id string) error {
	if id == "" {
		return invalid("id is required")
	}
	if u, err := ulid.ParseStrict(id); err != nil || u.String() != id {
		return invalid("id: want a run id (a canonical ULID), got %d characters", len(id))
	}
	return nil
}

// RunCanary implements the RPC: a whole-chain dry run, synchronously; a canary rollout,
// its first wave now and the rest in the background.
func (s *Service) RunCanary(ctx context.Context, req *canaryv1.RunCanaryRequest) (*canaryv1.RunCanaryResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	if !req.GetDryRun() {
		run, err := s.startRollout(ctx, tenant, req.GetProposalId())
		if err != nil {
			return nil, err
		}
		return &canaryv1.RunCanaryResponse{Run: run}, nil
	}
	run, err := s.dryRun(ctx, tenant, req.GetProposalId())
	if err != nil {
		return nil, err
	}
	return &canaryv1.RunCanaryResponse{Run: run}, nil
}

// GetCanaryResult implements the RPC. It reads only; another tenant's run is NOT_FOUND.
func (s *Service) GetCanaryResult(ctx context.Context, req *canaryv1.GetCanaryResultRequest) (*canaryv1.GetCanaryResultResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Store.CanaryRuns().Get(ctx, tenant, req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "canary run %s not found", req.GetId())
	}
	if err != nil {
		return nil, err
	}
	run, err := decodeRun(r)
	if err != nil {
		return nil, err
	}
	return &canaryv1.GetCanaryResultResponse{Run: run}, nil
}

var runJSON = protojson.MarshalOptions{UseProtoNames: true}

// save stores a new run.
func (s *Service) save(ctx context.Context, run *canaryv1.CanaryRun) error {
	raw, err := runJSON.Marshal(run)
	if err != nil {
		return fmt.Errorf("canary: encode run: %w", err)
	}
	_, err = s.deps.Store.CanaryRuns().Create(ctx, &store.CanaryRun{ID: run.GetId(), TenantID: run.GetTenantId(),
		ProposalID: run.GetProposalId(), State: run.GetState(), DryRun: run.GetDryRun(), CreatedBy: run.GetCreatedBy(),
		Run: raw, CreatedAt: run.GetStartedAt().AsTime()})
	return err
}

// decodeRun is a stored run as the API returns it.
func decodeRun(r *store.CanaryRun) (*canaryv1.CanaryRun, error) {
	run := &canaryv1.CanaryRun{}
	if err := protojson.Unmarshal(r.Run, run); err != nil {
		return nil, fmt.Errorf("canary: stored run %s: %w", r.ID, err)
	}
	run.Id, run.TenantId, run.ProposalId, run.State, run.DryRun = r.ID, r.TenantID, r.ProposalID, r.State, r.DryRun
	return run, nil
}
