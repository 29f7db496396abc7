package scorer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/metricsource"
	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// --- fakes ---

type fakeModel struct {
	p   float64
	err error
	got model.AssessRequest
}

func (f *fakeModel) Name() string { return "fake-model" }
func (f *fakeModel) Suggest(context.Context, model.SuggestRequest) (model.Suggestion, error) {
	return model.Suggestion{}, errors.New("not used")
}
func (f *fakeModel) Assess(_ context.Context, r model.AssessRequest) (model.Assessment, error) {
	f.got = r
	if f.err != nil {
		return model.Assessment{}, f.err
	}
	return model.Assessment{SuccessProbability: f.p, Model: "fake-1"}, nil
}

type fakeMetrics struct {
	m     metricsource.Metrics
	err   error
	block bool // wait for the context to end
}

func (f *fakeMetrics) Name() string { return "fake-metrics" }
func (f *fakeMetrics) Snapshot(ctx context.Context, _, _ string, _ []string) (metricsource.Metrics, error) {
	if f.block {
		<-ctx.Done()
		return metricsource.Metrics{}, ctx.Err()
	}
	return f.m, f.err
}

// --- helpers ---

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// proposal is what the coordinator sends about the proposal it has scored.
type proposal struct {
	action, target, impact string
	regions                []string
	params                 map[string]any
	history                *scorerv1.HistoryCounts // nil: none
	votes                  *scorerv1.VoteAgreement
}

// owndataRequest is the ScoreRequest the coordinator would send for p.
func owndataRequest(t testing.TB, p proposal) *scorerv1.ScoreRequest {
	t.Helper()
	m := &typesv1.Manifest{Action: p.action, Target: p.target, Regions: p.regions}
	if p.params != nil {
		params, err := structpb.NewStruct(p.params)
		require.NoError(t, err)
		m.Parameters = params
	}
	h := p.history
	if h == nil {
		h = &scorerv1.HistoryCounts{}
	}
	return &scorerv1.ScoreRequest{ProposalId: ulid.Make().String(), TenantId: "t1", Manifest: m, Impact: p.impact,
		Votes: p.votes, History: h}
}

// owndataFixtureHistory: t1's scale on serviceX has 3 successes and 2 failures; scale on any
// target 4 and 3.
var owndataFixtureHistory = &scorerv1.HistoryCounts{ActionTargetSuccesses: 3, ActionTargetFailures: 2, ActionSuccesses: 4, ActionFailures: 3}

func putWorld(t testing.TB, st store.Store, tenant, region, target string, replicas int, price float64) {
	t.Helper()
	raw, err := canonical.Marshal(map[string]any{"replicas": replicas, "cost_per_replica_hour": price})
	require.NoError(t, err)
	_, err = st.WorldStates().Put(context.Background(), &store.WorldState{TenantID: tenant, Region: region, Target: target, State: raw}, -1)
	require.NoError(t, err)
}

func as(tenant string) context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "u1", TenantID: tenant, Roles: []string{auth.RoleProposer}, Token: "tok-" + tenant})
}

// fixture is a world and the request of a proposal to score.
type fixture struct {
	st      store.Store
	target  *scorerv1.ScoreRequest // the AGREED scale/serviceX proposal
	model   *fakeModel
	metrics *fakeMetrics
	logs    *bytes.Buffer
	svc     *Service
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st := openStore(t)
	putWorld(t, st, "t1", "eu-west", "serviceX", 4, 0.15)
	putWorld(t, st, "t1", "us-east", "serviceX", 6, 0.15)
	f := &fixture{st: st, model: &fakeModel{p: 0.86},
		metrics: &fakeMetrics{m: metricsource.Metrics{ErrorRate: 0.004, CPUUtilisation: 0.62, P99LatencyMS: 180, Samples: 1234}},
		logs:    &bytes.Buffer{}}
	f.target = owndataRequest(t, proposal{action: "scale", target: "serviceX", impact: "medium",
		regions: []string{"us-east", "eu-west"}, params: map[string]any{"replicas_delta": 2},
		history: owndataFixtureHistory, votes: &scorerv1.VoteAgreement{Accepted: 4, Total: 5}})
	f.svc = New(Deps{World: world.NewSimulated(st), Model: f.model, Metrics: f.metrics,
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), SourceTimeout: time.Second})
	return f
}

// --- tests ---

func TestServiceScore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r, err := f.svc.Score(as("t1"), f.target)
	require.NoError(t, err)
	require.Equal(t, f.target.GetProposalId(), r.GetProposalId())
	h := r.GetHistory()
	require.Equal(t, []any{int32(3), int32(2), ScopeActionTarget}, []any{h.GetSuccesses(), h.GetFailures(), h.GetScope()})
	require.Equal(t, 438.0, r.GetCostEstimate().GetAmount())
	require.Equal(t, []string{"eu-west", "us-east"}, []string{r.GetCostEstimate().GetBreakdown()[0].GetRegion(), r.GetCostEstimate().GetBreakdown()[1].GetRegion()})
	require.Contains(t, r.GetExplanation(), "3 of 5 similar scale changes for serviceX succeeded (posterior 0.57")
	require.Contains(t, r.GetExplanation(), "regions agreed 4 of 5 (accepting weight 0.80)", "the top factor here")
	require.Contains(t, r.GetExplanation(), "over 1,234 requests (fake-metrics)")
	require.Contains(t, r.GetExplanation(), "The model fake-1 puts success at 0.86")
	require.Contains(t, r.GetExplanation(), "Estimated cost +$438/month across 2 regions.")
	require.Greater(t, r.GetConfidence(), 0.5)
	require.Equal(t, model.AssessRequest{TenantID: "t1", Action: "scale", Target: "serviceX", Regions: []string{"us-east", "eu-west"},
		Parameters: map[string]any{"replicas_delta": 2.0}}, f.model.got)
	require.Contains(t, f.logs.String(), `"msg":"proposal scored"`)
	require.Contains(t, f.logs.String(), r.GetInputsSha256())

	// Deterministic through the service too: same stored inputs, same bytes.
	again, err := f.svc.Score(as("t1"), f.target)
	require.NoError(t, err)
	a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(again)
	require.Equal(t, a, b)
}

func TestServiceHistoryFallsBackToAction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	req := owndataRequest(t, proposal{action: "scale", target: "serviceY",
		history: &scorerv1.HistoryCounts{ActionSuccesses: 4, ActionFailures: 3}})
	r, err := f.svc.Score(as("t1"), req)
	require.NoError(t, err)
	h := r.GetHistory()
	require.Equal(t, ScopeAction, h.GetScope())
	require.Equal(t, int32(4), h.GetSuccesses(), "serviceX and serviceZ")
	require.Equal(t, int32(3), h.GetFailures())
	require.Contains(t, r.GetExplanation(), "No scale change for serviceY has finished yet, and 4 of 7 scale changes for other targets succeeded")
	// No world state was stored for serviceY: the simulated world seeds one, in the default region.
	require.Equal(t, "default", r.GetCostEstimate().GetBreakdown()[0].GetRegion())
	require.Contains(t, r.GetExplanation(), "no cost change is estimated")
}

func TestServiceNoHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r, err := f.svc.Score(as("t1"), owndataRequest(t, proposal{action: "migrate", target: "serviceX"}))
	require.NoError(t, err)
	require.Equal(t, ScopeNone, r.GetHistory().GetScope())
	require.Equal(t, 0.5, r.GetHistory().GetPosteriorMean())
	require.Zero(t, factor(r, FactorHistory).GetWeight())
	require.Zero(t, factor(r, FactorVotes).GetWeight(), "no vote agreement sent: neutral")
}

func TestServiceTenantScoping(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.svc.Score(as("t2"), f.target) // tenant_id t1 with a t2 token
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = f.svc.Score(context.Background(), f.target)
	require.Equal(t, codes.Unauthenticated, status.Code(err), "fails closed without the auth interceptor")
}

// A request that names only a proposal (as a person might type it) is refused with a
// message saying what the scorer needs; it never invents a score.
func TestServiceRefusesRequestWithoutInputs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: ulid.Make().String()})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "manifest and history are required")
}

func TestServiceDegradesWithoutOptionalSources(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model.err = &model.StatusError{Op: "assess", Code: 503}
	f.metrics.err = errors.New("prometheus down")
	f.target.Votes = nil // no round completed
	r, err := f.svc.Score(as("t1"), f.target)
	require.NoError(t, err)
	for _, name := range []string{FactorVotes, FactorMetrics, FactorModel} {
		require.Zero(t, factor(r, name).GetWeight(), name)
	}
	require.Contains(t, r.GetExplanation(), "The model (fake-model) was unavailable, so it did not count.")
	require.Contains(t, r.GetExplanation(), "Live metrics (fake-metrics) were unavailable")
	require.Contains(t, r.GetExplanation(), "The largest factor is the history")
	require.Contains(t, f.logs.String(), "source unavailable")
	require.Contains(t, f.logs.String(), `"source":"model"`)
}

func TestServiceSlowMetricsTimeOut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.metrics.block = true
	f.svc.deps.SourceTimeout = 50 * time.Millisecond
	start := time.Now()
	r, err := f.svc.Score(as("t1"), f.target)
	require.NoError(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Zero(t, factor(r, FactorMetrics).GetWeight())
}

func TestServiceCancelledRequestFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.metrics.block = true
	ctx, cancel := context.WithTimeout(as("t1"), 50*time.Millisecond)
	defer cancel()
	_, err := f.svc.Score(ctx, f.target)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestValidateScore(t *testing.T) {
	t.Parallel()
	full := func(id string) *scorerv1.ScoreRequest {
		return &scorerv1.ScoreRequest{ProposalId: id, Manifest: &typesv1.Manifest{Action: "scale"}, History: &scorerv1.HistoryCounts{}}
	}
	for name, c := range map[string]struct {
		req *scorerv1.ScoreRequest
		msg string
	}{
		"votes above total": {func() *scorerv1.ScoreRequest {
			r := full(ulid.Make().String())
			r.Votes = &scorerv1.VoteAgreement{Accepted: 6, Total: 5}
			return r
		}(), "is not a share"},
		"votes NaN": {func() *scorerv1.ScoreRequest {
			r := full(ulid.Make().String())
			r.Votes = &scorerv1.VoteAgreement{Accepted: math.NaN(), Total: 5}
			return r
		}(), "is not a share"},
		"negative history": {func() *scorerv1.ScoreRequest {
			r := full(ulid.Make().String())
			r.History.ActionFailures = -1
			return r
		}(), "cannot be negative"},
		"no history": {func() *scorerv1.ScoreRequest {
			r := full(ulid.Make().String())
			r.History = nil
			return r
		}(), "manifest and history are required"},
	} {
		err := validateScore(c.req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), name)
		require.Contains(t, err.Error(), c.msg, name)
	}
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"", false},
		{"p1", false},
		{"01j00000000000000000000000", false}, // lower case is not how ids are issued
		{"01J0000000000000000000000U", false}, // U is not in Crockford base32
		{ulid.Make().String(), true},
	} {
		err := validateScore(full(c.id))
		if c.ok {
			require.NoError(t, err, c.id)
			continue
		}
		require.Equal(t, codes.InvalidArgument, status.Code(err), c.id)
		require.Contains(t, err.Error(), "proposal_id")
	}
}

func TestServiceIgnoresOutOfRangeAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model.p = 1.5
	f.metrics.m = metricsource.Metrics{ErrorRate: math.NaN(), Samples: 10}
	r, err := f.svc.Score(as("t1"), f.target)
	require.NoError(t, err)
	for _, name := range []string{FactorMetrics, FactorModel} {
		require.Zero(t, factor(r, name).GetWeight(), name)
	}
	require.Equal(t, 2, strings.Count(f.logs.String(), "source unavailable"))
}

// The estimate prices the change the world would make, by its rules: a reduce_cost
// with no parameter removes one replica per region, and replicas wins over
// replicas_delta, as enactment applies them.
func TestServiceCostFollowsTheWorldsRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reduce := owndataRequest(t, proposal{action: "reduce_cost", target: "serviceX", regions: []string{"us-east", "eu-west"}})
	r, err := f.svc.Score(as("t1"), reduce)
	require.NoError(t, err)
	require.Equal(t, -219.0, r.GetCostEstimate().GetAmount(), "-1 replica × $0.15/h × 730 h in each of 2 regions")

	both := owndataRequest(t, proposal{action: "scale", target: "serviceX",
		regions: []string{"us-east", "eu-west"}, params: map[string]any{"replicas": 5, "replicas_delta": 2}})
	r, err = f.svc.Score(as("t1"), both)
	require.NoError(t, err)
	require.Equal(t, 0.0, r.GetCostEstimate().GetAmount(), "to 5 replicas: +1 in eu-west, -1 in us-east")
}
