// Package scorer is the confidence scorer (I.4.4): for a proposal it computes the
// probability that the decision succeeds, its risk and its monthly cost, and explains
// them in a paragraph a person can read.
//
// # The score
//
// Four sources of evidence each give a success probability and a weight:
//
//   - history: the tenant's earlier decisions with the same action and target (or, if
//     the target has none, the same action): successes are ENACTED proposals (rolled
//     back ones have status ROLLED_BACK), failures ROLLED_BACK and DRY_RUN_FAILED,
//     counted by the coordinator, which owns them, and sent in the request. A
//     Beta(1,1) prior gives the posterior Beta(1+s, 1+f), reported with its mean and
//     90% credible interval; 2 of 2 is 0.75 (interval 0.37–0.98), not 1.0.
//   - vote agreement: the accepting share of the final negotiation round's weight, as
//     the request states it (neutral 0.5 with no weight when absent).
//   - live metrics: error rate and CPU from a metricsource.Source, read against the
//     direction of the change (see metricsProbability).
//   - the model: a model.Provider's success probability.
//
// Confidence is sigmoid of the weighted mean of their log-odds, with an anchor of
// weight 1 at 0.5 so thin evidence stays near 0.5; weights shrink with thin evidence
// (few past decisions, little traffic) and are 0 for a source that is unavailable. Each
// factor's effect is the confidence minus the confidence had that factor read a neutral
// 0.5 at the same weight, and the explanation leads with the largest. The constants are in math.go.
//
// Risk is a weighted sum of impact, blast radius, error rate and uncertainty (see
// risk); cost is replicas delta × price per replica-hour × 730 per region, from the
// world state (see cost).
//
// # Determinism
//
// Score is a pure function of Inputs: no clock, no randomness, no map iteration in
// the arithmetic. Equal Inputs (their SHA256 is in the response) give byte-identical
// responses. The sources (model, metrics, world) are read once per request; the scorer
// owns no table and reads no other service's.
package scorer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/metricsource"
	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/world"
)

// DefaultSourceTimeout bounds each call to the model and the metrics source. A source
// that does not answer in time counts as unavailable (weight 0), so a slow Prometheus
// degrades the score instead of failing it.
const DefaultSourceTimeout = 5 * time.Second

// Deps are the scorer's collaborators. World is required; every other field has a
// simulation default. The scorer owns no table: what it scores, the vote agreement and
// the history of similar decisions come in the request.
type Deps struct {
	// Model assesses the change; model.NewSimulated() when nil.
	Model model.Provider
	// Metrics reads live metrics; metricsource.NewSimulated() when nil.
	Metrics metricsource.Source
	// World reads replicas and prices and plans the change for the cost, with the same
	// rules enactment applies (the executor the coordinator enacts with). Required.
	World world.Planner
	// Logger; discards when nil.
	Logger *slog.Logger
	// SourceTimeout bounds each model and metrics call; DefaultSourceTimeout when 0.
	SourceTimeout time.Duration
}

// Service implements scorerv1.ScorerServiceServer.
type Service struct {
	scorerv1.UnimplementedScorerServiceServer
	deps Deps
}

// New returns the scorer, filling unset optional Deps with their defaults.
func New(deps Deps) *Service {
	if deps.Model == nil {
		deps.Model = model.NewSimulated()
	}
	if deps.Metrics == nil {
		deps.Metrics = metricsource.NewSimulated()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.SourceTimeout <= 0 {
		deps.SourceTimeout = DefaultSourceTimeout
	}
	return &Service{deps: deps}
}

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + scorerv1.ScorerService_ServiceDesc.ServiceName + "/" + name }
	return server.Service{
		Name:     fabric.Scorer,
		Register: func(g grpc.ServiceRegistrar) { scorerv1.RegisterScorerServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return scorerv1.RegisterScorerServiceHandlerClient(ctx, mux, scorerv1.NewScorerServiceClient(conn))
		},
		Policy: auth.Policy{
			m("Score"): {auth.RoleProposer, auth.RoleService},
		},
		Validators: server.Validators{
			m("Score"): validateScore,
		},
	}
}

// validateScore: proposal_id is required and is a proposal id (26-character ULID, as
// the coordinator issues them); the manifest and the history counts are required (the
// scorer cannot look them up); the vote agreement, when present, is a share.
func validateScore(req any) error {
	r := req.(*scorerv1.ScoreRequest)
	id := r.GetProposalId()
	if id == "" {
		return status.Error(codes.InvalidArgument, "proposal_id is required")
	}
	if !manifestpkg.ValidProposalID(id) {
		return status.Errorf(codes.InvalidArgument, "proposal_id %q: not a proposal id (26-character ULID)", redact.Echo(id))
	}
	if r.GetManifest() == nil || r.GetHistory() == nil {
		return status.Error(codes.InvalidArgument, "manifest and history are required: the scorer reads no proposal records, "+
			"so a request names the manifest to score, its impact, the vote agreement and the outcome counts of similar "+
			`decisions, e.g. {"proposal_id":"...","manifest":{"action":"scale","target":"svc"},"impact":"low","history":{}}`)
	}
	if v := r.GetVotes(); v != nil && !(finite(v.GetAccepted(), v.GetTotal()) && v.GetTotal() > 0 && v.GetAccepted() >= 0 && v.GetAccepted() <= v.GetTotal()) {
		return status.Errorf(codes.InvalidArgument, "votes: accepted %v of total %v is not a share (want 0 <= accepted <= total, total > 0)",
			v.GetAccepted(), v.GetTotal())
	}
	if h := r.GetHistory(); h.GetActionTargetSuccesses() < 0 || h.GetActionTargetFailures() < 0 || h.GetActionSuccesses() < 0 || h.GetActionFailures() < 0 {
		return status.Error(codes.InvalidArgument, "history: counts cannot be negative")
	}
	return nil
}

// Score implements the RPC for the caller's tenant (P5: a tenant_id other than the
// token's is refused).
func (s *Service) Score(ctx context.Context, req *scorerv1.ScoreRequest) (*scorerv1.ScoreResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	if t := req.GetTenantId(); t != "" {
		if err := auth.RequireTenant(ctx, t); err != nil {
			return nil, err
		}
	}
	if err := validateScore(req); err != nil { // the interceptor validates too; direct calls are checked here
		return nil, err
	}
	in, err := s.Gather(ctx, tenant, req)
	if err != nil {
		return nil, err
	}
	resp, err := Score(in)
	if err != nil {
		return nil, err
	}
	s.deps.Logger.InfoContext(ctx, "proposal scored", "proposal_id", in.ProposalID, "tenant_id", tenant,
		"confidence", resp.GetConfidence(), "risk", resp.GetRisk().GetLevel(),
		"cost_usd_month", resp.GetCostEstimate().GetAmount(), "inputs_sha256", resp.GetInputsSha256())
	return resp, nil
}

// Gather turns a request into the score's Inputs. The world state is required (its
// errors fail the request); model and metrics that fail, time out
// (Deps.SourceTimeout) or answer out of range count as unavailable and are logged,
// unless the request itself was cancelled.
func (s *Service) Gather(ctx context.Context, tenant string, req *scorerv1.ScoreRequest) (Inputs, error) {
	if s.deps.World == nil {
		return Inputs{}, errors.New("scorer: Deps.World is required")
	}
	p := proposalInfo(tenant, req)
	in := Inputs{ProposalID: p.ID, Action: p.Action, Target: p.Target, Impact: p.Impact}
	switch in.Impact {
	case LevelLow, LevelMedium, LevelHigh:
	default:
		in.Impact = LevelMedium
	}
	in.History = history(p, req.GetHistory())
	if v := req.GetVotes(); v != nil {
		in.Votes = VoteInput{Found: true, Accepted: v.GetAccepted(), Total: v.GetTotal()}
	}

	// The optional sources are independent remote calls: ask them at once, so the
	// request waits for the slowest, not the sum (P6). Results land in fixed fields and
	// are examined in a fixed order, so concurrency does not affect the score.
	var (
		wg           sync.WaitGroup
		m            metricsource.Metrics
		a            model.Assessment
		mErr, modErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		mctx, cancel := context.WithTimeout(ctx, s.deps.SourceTimeout)
		defer cancel()
		m, mErr = s.deps.Metrics.Snapshot(mctx, tenant, p.Target, p.Regions)
	}()
	go func() {
		defer wg.Done()
		actx, cancel := context.WithTimeout(ctx, s.deps.SourceTimeout)
		defer cancel()
		a, modErr = s.deps.Model.Assess(actx, model.AssessRequest{TenantID: tenant, Action: p.Action, Target: p.Target,
			Regions: p.Regions, Parameters: p.Parameters})
	}()
	wg.Wait()
	if ctx.Err() != nil {
		return Inputs{}, ctx.Err()
	}

	in.Metrics = MetricsInput{Source: s.deps.Metrics.Name()}
	if mErr == nil && !(finite(m.ErrorRate, m.CPUUtilisation, m.P99LatencyMS) && m.ErrorRate >= 0 && m.CPUUtilisation >= 0 && m.Samples >= 0) {
		mErr = fmt.Errorf("reading out of range: %+v", m)
	}
	if s.usable(ctx, "metrics", mErr) {
		in.Metrics = MetricsInput{Available: true, Source: s.deps.Metrics.Name(),
			ErrorRate: m.ErrorRate, CPU: m.CPUUtilisation, P99LatencyMS: m.P99LatencyMS, Samples: m.Samples}
	}

	in.Model = ModelInput{Provider: s.deps.Model.Name()}
	if modErr == nil && !(finite(a.SuccessProbability) && a.SuccessProbability >= 0 && a.SuccessProbability <= 1) {
		modErr = fmt.Errorf("success probability %v is not in [0,1]", a.SuccessProbability)
	}
	if s.usable(ctx, "model", modErr) {
		in.Model = ModelInput{Available: true, Provider: s.deps.Model.Name(), Model: a.Model, Probability: a.SuccessProbability}
	}

	var err error
	if in.Regions, err = s.regionChanges(ctx, p); err != nil {
		return Inputs{}, err
	}
	return in, nil
}

// usable reports whether an optional source's answer can be used; a failed one is
// logged and then scores with weight 0.
func (s *Service) usable(ctx context.Context, source string, err error) bool {
	if err == nil {
		return true
	}
	s.deps.Logger.WarnContext(ctx, "scorer: source unavailable; scoring without it", "source", source, "error", err)
	return false
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
