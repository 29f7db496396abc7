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

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/metricsource"
	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/store"
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

type fakeVotes struct {
	accepted, total float64
	found           bool
	err             error
}

func (f fakeVotes) Agreement(context.Context, string, string) (float64, float64, bool, error) {
	return f.accepted, f.total, f.found, f.err
}

// --- helpers ---

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

type proposal struct {
	tenant, status, action, target, impact string
	regions                                []string
	params                                 map[string]any
}

func addProposal(t testing.TB, st store.Store, p proposal) string {
	t.Helper()
	m := map[string]any{"action": p.action, "target": p.target}
	if len(p.regions) > 0 {
		m["regions"] = p.regions
	}
	if p.params != nil {
		m["parameters"] = p.params
	}
	raw, err := canonical.Marshal(m)
	require.NoError(t, err)
	id := ulid.Make().String()
	_, _, err = st.Proposals().Create(context.Background(), &store.Proposal{
		ID: id, TenantID: p.tenant, Status: p.status, Impact: p.impact, Manifest: raw, CreatedBy: "test",
	})
	require.NoError(t, err)
	return id
}

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

// fixture is a store with history for tenant t1 and a proposal to score.
type fixture struct {
	st      store.Store
	target  string // id of the AGREED scale/serviceX proposal
	model   *fakeModel
	metrics *fakeMetrics
	logs    *bytes.Buffer
	svc     *Service
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st := openStore(t)
	add := func(tenant, status, action, target string) {
		addProposal(t, st, proposal{tenant: tenant, status: status, action: action, target: target})
	}
	// t1, scale serviceX: 3 successes, 2 failures.
	for range 3 {
		add("t1", statusEnacted, "scale", "serviceX")
	}
	add("t1", statusRolledBack, "scale", "serviceX")
	add("t1", statusDryRunFailed, "scale", "serviceX")
	// Not outcomes, other actions, other tenants: none of these count.
	add("t1", "APPROVED", "scale", "serviceX")
	add("t1", "DENIED", "scale", "serviceX")
	add("t1", statusRolledBack, "restart", "serviceX")
	for range 4 {
		add("t2", statusEnacted, "scale", "serviceX")
	}
	// t1, scale on other targets: 1 success, 1 failure.
	add("t1", statusEnacted, "scale", "serviceZ")
	add("t1", statusRolledBack, "scale", "serviceZ")

	putWorld(t, st, "t1", "eu-west", "serviceX", 4, 0.15)
	putWorld(t, st, "t1", "us-east", "serviceX", 6, 0.15)
	f := &fixture{st: st, model: &fakeModel{p: 0.86},
		metrics: &fakeMetrics{m: metricsource.Metrics{ErrorRate: 0.004, CPUUtilisation: 0.62, P99LatencyMS: 180, Samples: 1234}},
		logs:    &bytes.Buffer{}}
	f.target = addProposal(t, st, proposal{tenant: "t1", status: "AGREED", action: "scale", target: "serviceX", impact: "medium",
		regions: []string{"us-east", "eu-west"}, params: map[string]any{"replicas_delta": 2}})
	f.svc = New(Deps{Store: st, Votes: fakeVotes{accepted: 4, total: 5, found: true}, Model: f.model, Metrics: f.metrics,
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), SourceTimeout: time.Second})
	return f
}

// --- tests ---

func TestServiceScore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: f.target})
	require.NoError(t, err)
	require.Equal(t, f.target, r.GetProposalId())
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
	again, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: f.target})
	require.NoError(t, err)
	a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(again)
	require.Equal(t, a, b)
}

func TestServiceHistoryFallsBackToAction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := addProposal(t, f.st, proposal{tenant: "t1", status: "AGREED", action: "scale", target: "serviceY"})
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: id})
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
	id := addProposal(t, f.st, proposal{tenant: "t1", status: "AGREED", action: "migrate", target: "serviceX"})
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: id})
	require.NoError(t, err)
	require.Equal(t, ScopeNone, r.GetHistory().GetScope())
	require.Equal(t, 0.5, r.GetHistory().GetPosteriorMean())
	require.Zero(t, factor(r, FactorHistory).GetWeight())
}

func TestServiceOwnOutcomeDoesNotCount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := addProposal(t, f.st, proposal{tenant: "t1", status: statusEnacted, action: "scale", target: "serviceX"})
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: id})
	require.NoError(t, err)
	require.Equal(t, int32(3), r.GetHistory().GetSuccesses())
}

func TestServiceTenantScoping(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.svc.Score(as("t2"), &scorerv1.ScoreRequest{ProposalId: f.target})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant's proposal is not found")
	_, err = f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: ulid.Make().String()})
	require.Equal(t, codes.NotFound, status.Code(err))
	// Same message either way: existence is not leaked.
	_, err2 := f.svc.Score(as("t2"), &scorerv1.ScoreRequest{ProposalId: f.target})
	require.Equal(t, status.Convert(err).Message(), status.Convert(err2).Message())
	_, err = f.svc.Score(context.Background(), &scorerv1.ScoreRequest{ProposalId: f.target})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "fails closed without the auth interceptor")
}

// leakyProposals returns a proposal of another tenant, as a buggy source might.
type leakyProposals struct{}

func (leakyProposals) Get(_ context.Context, _, id string) (ProposalInfo, error) {
	return ProposalInfo{ID: id, TenantID: "someone-else", Action: "scale", Target: "x"}, nil
}

func TestServiceRefusesProposalOfAnotherTenantFromSource(t *testing.T) {
	t.Parallel()
	svc := New(Deps{Store: openStore(t), Proposals: leakyProposals{}})
	_, err := svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: ulid.Make().String()})
	require.Equal(t, codes.NotFound, status.Code(err))
}

func TestServiceDegradesWithoutOptionalSources(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model.err = &model.StatusError{Op: "assess", Code: 503}
	f.metrics.err = errors.New("prometheus down")
	f.svc.deps.Votes = fakeVotes{err: errors.New("negotiator down")}
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: f.target})
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
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: f.target})
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
	_, err := f.svc.Score(ctx, &scorerv1.ScoreRequest{ProposalId: f.target})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestValidateScore(t *testing.T) {
	t.Parallel()
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
		err := validateScore(&scorerv1.ScoreRequest{ProposalId: c.id})
		if c.ok {
			require.NoError(t, err, c.id)
			continue
		}
		require.Equal(t, codes.InvalidArgument, status.Code(err), c.id)
		require.Contains(t, err.Error(), "proposal_id")
	}
}

func TestStoreProposals(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	id := addProposal(t, st, proposal{tenant: "t1", status: "AGREED", action: "scale", target: "serviceX", impact: "high",
		regions: []string{"eu-west"}, params: map[string]any{"replicas": 12}})
	p, err := StoreProposals{Store: st}.Get(context.Background(), "t1", id)
	require.NoError(t, err)
	require.Equal(t, ProposalInfo{ID: id, TenantID: "t1", Status: "AGREED", Action: "scale", Target: "serviceX",
		Regions: []string{"eu-west"}, Parameters: map[string]any{"replicas": 12.0}, Impact: "high"}, p)
	_, err = StoreProposals{Store: st}.Get(context.Background(), "t2", id)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestServiceIgnoresOutOfRangeAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.model.p = 1.5
	f.metrics.m = metricsource.Metrics{ErrorRate: math.NaN(), Samples: 10}
	f.svc.deps.Votes = fakeVotes{accepted: 6, total: 5, found: true}
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: f.target})
	require.NoError(t, err)
	for _, name := range []string{FactorVotes, FactorMetrics, FactorModel} {
		require.Zero(t, factor(r, name).GetWeight(), name)
	}
	require.Equal(t, 3, strings.Count(f.logs.String(), "source unavailable"))
}

// The estimate prices the change the world would make, by its rules: a reduce_cost
// with no parameter removes one replica per region, and replicas wins over
// replicas_delta, as enactment applies them.
func TestServiceCostFollowsTheWorldsRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reduce := addProposal(t, f.st, proposal{tenant: "t1", status: "AGREED", action: "reduce_cost", target: "serviceX",
		regions: []string{"us-east", "eu-west"}})
	r, err := f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: reduce})
	require.NoError(t, err)
	require.Equal(t, -219.0, r.GetCostEstimate().GetAmount(), "-1 replica × $0.15/h × 730 h in each of 2 regions")

	both := addProposal(t, f.st, proposal{tenant: "t1", status: "AGREED", action: "scale", target: "serviceX",
		regions: []string{"us-east", "eu-west"}, params: map[string]any{"replicas": 5, "replicas_delta": 2}})
	r, err = f.svc.Score(as("t1"), &scorerv1.ScoreRequest{ProposalId: both})
	require.NoError(t, err)
	require.Equal(t, 0.0, r.GetCostEstimate().GetAmount(), "to 5 replicas: +1 in eu-west, -1 in us-east")
}
