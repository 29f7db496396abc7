package model

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/policy"

	"github.com/stretchr/testify/require"
)

// fabricServer is a fake Neural Fabric answering each path with a fixed status and body,
// and recording the last request body.
type fabricServer struct {
	status int
	body   string
	delay  time.Duration
	got    map[string]any
	path   string
}

func (f *fabricServer) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.path = r.Method + " " + r.URL.Path
		raw, _ := io.ReadAll(r.Body)
		f.got = nil
		_ = json.Unmarshal(raw, &f.got)
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestHTTPAssess(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		status  int
		body    string
		want    Assessment
		wantErr func(t *testing.T, err error)
	}{
		{name: "ok", status: 200, body: `{"success_probability":0.82,"rationale":"similar changes went well","model":"nf-7"}`,
			want: Assessment{SuccessProbability: 0.82, Rationale: "similar changes went well", Model: "nf-7"}},
		{name: "model name defaults", status: 200, body: `{"success_probability":0}`,
			want: Assessment{SuccessProbability: 0, Model: HTTPName}},
		{name: "500", status: 500, body: `{"error":"boom"}`, wantErr: func(t *testing.T, err error) {
			var se *StatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, 500, se.Code)
			require.Equal(t, "assess", se.Op)
			require.Contains(t, err.Error(), "HTTP 500")
			require.NotContains(t, err.Error(), "boom", "the remote body is not echoed")
		}},
		{name: "bad json", status: 200, body: `{"success_probability":`, wantErr: func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrInvalidResponse)
		}},
		{name: "not an object", status: 200, body: `[1,2]`, wantErr: func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrInvalidResponse)
		}},
		{name: "probability above 1", status: 200, body: `{"success_probability":1.2,"model":"x"}`, wantErr: func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrInvalidResponse)
			require.Contains(t, err.Error(), "1.2")
		}},
		{name: "negative probability", status: 200, body: `{"success_probability":-0.1,"model":"x"}`, wantErr: func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrInvalidResponse)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := &fabricServer{status: c.status, body: c.body}
			p := NewHTTP(f.start(t)+"/", nil)
			got, err := p.Assess(context.Background(), AssessRequest{TenantID: "t1", Action: "scale", Target: "serviceX",
				Regions: []string{"eu-west"}, Parameters: map[string]any{"replicas_delta": 2}})
			require.Equal(t, "POST /v1/assess", f.path)
			require.Equal(t, map[string]any{"tenant_id": "t1", "action": "scale", "target": "serviceX",
				"regions": []any{"eu-west"}, "parameters": map[string]any{"replicas_delta": 2.0}}, f.got, "snake_case body")
			if c.wantErr != nil {
				require.Error(t, err)
				c.wantErr(t, err)
				require.Equal(t, Assessment{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, got)
		})
	}
}

func TestHTTPSuggest(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body string
		status     int
		ok         bool
	}{
		{"ok", `{"action":"scale","parameters":{"replicas_delta":1},"impact":"medium","confidence":0.7,"rationale":"cpu"}`, 200, true},
		{"201 is fine", `{"action":"scale","confidence":0.7}`, 201, true},
		{"no action", `{"confidence":0.7}`, 200, false},
		{"confidence out of range", `{"action":"scale","confidence":7}`, 200, false},
		{"unknown impact", `{"action":"scale","confidence":0.5,"impact":"huge"}`, 200, false},
		{"503", `{}`, 503, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := &fabricServer{status: c.status, body: c.body}
			p := NewHTTP(f.start(t), nil)
			got, err := p.Suggest(context.Background(), SuggestRequest{TenantID: "t1", Context: "cpu is hot",
				MetricHints: map[string]float64{"cpu": 0.9}})
			require.Equal(t, "POST /v1/suggest", f.path)
			require.Equal(t, "cpu is hot", f.got["context"])
			require.Equal(t, map[string]any{"cpu": 0.9}, f.got["metric_hints"])
			if !c.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "scale", got.Action)
		})
	}
}

func TestHTTPTimeoutViaContext(t *testing.T) {
	t.Parallel()
	f := &fabricServer{status: 200, body: `{"success_probability":0.5}`, delay: 5 * time.Second}
	p := NewHTTP(f.start(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Assess(ctx, AssessRequest{Action: "scale"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestHTTPClientTimeout(t *testing.T) {
	t.Parallel()
	f := &fabricServer{status: 200, body: `{"success_probability":0.5}`, delay: 5 * time.Second}
	p := NewHTTP(f.start(t), &http.Client{Timeout: 50 * time.Millisecond})
	_, err := p.Assess(context.Background(), AssessRequest{Action: "scale"})
	require.Error(t, err)
}

func TestHTTPErrorsDoNotCarryCredentials(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1; the URL's userinfo must not reach the error.
	p := NewHTTP("http://user:s3cret@127.0.0.1:1", &http.Client{Timeout: time.Second})
	_, err := p.Assess(context.Background(), AssessRequest{Action: "scale"})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestHTTPOversizedResponse(t *testing.T) {
	t.Parallel()
	f := &fabricServer{status: 200, body: `{"rationale":"` + strings.Repeat("a", maxResponseBytes) + `"}`}
	_, err := NewHTTP(f.start(t), nil).Assess(context.Background(), AssessRequest{Action: "scale"})
	require.ErrorIs(t, err, ErrInvalidResponse)
}

func TestSimulatedSuggestRules(t *testing.T) {
	t.Parallel()
	sim := NewSimulated()
	require.Equal(t, SimulatedName, sim.Name())
	for _, c := range []struct {
		name    string
		context string
		hints   map[string]float64
		action  string
		delta   any
		impact  string
	}{
		{"reduce cost", "reduce cost", nil, "reduce_cost", -1, policy.ImpactLow},
		{"cost word, any case", "Our COSTS are too high", nil, "reduce_cost", -1, policy.ImpactLow},
		{"not a substring match", "costume party", nil, "no_change", nil, policy.ImpactLow},
		{"cpu hint", "", map[string]float64{"cpu": 0.85}, "scale", 1, policy.ImpactMedium},
		{"latency hint very high", "", map[string]float64{"latency": 0.97}, "scale", 2, policy.ImpactMedium},
		{"scale hint", "", map[string]float64{"scale": 0.81}, "scale", 1, policy.ImpactMedium},
		{"error rate hint", "", map[string]float64{"error_rate": 0.08}, "scale", 1, policy.ImpactMedium},
		{"latency word", "p99 latency is up", nil, "scale", 1, policy.ImpactMedium},
		{"pressure beats cost", "reduce cost", map[string]float64{"cpu": 0.9}, "scale", 1, policy.ImpactMedium},
		{"scale down word", "scale down serviceX", nil, "scale", -1, policy.ImpactLow},
		{"idle cpu", "", map[string]float64{"cpu": 0.1}, "scale", -1, policy.ImpactLow},
		{"hint at threshold is not pressure", "", map[string]float64{"cpu": 0.8}, "no_change", nil, policy.ImpactLow},
		{"nothing", "hello", nil, "no_change", nil, policy.ImpactLow},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := sim.Suggest(context.Background(), SuggestRequest{TenantID: "t1", Context: c.context, Target: "serviceX", MetricHints: c.hints})
			require.NoError(t, err)
			require.NoError(t, validateSuggestion(s))
			require.Equal(t, c.action, s.Action, s.Rationale)
			require.Equal(t, c.delta, s.Parameters["replicas_delta"])
			require.Equal(t, c.impact, s.Impact)
			require.NotEmpty(t, s.Rationale)
			again, err := sim.Suggest(context.Background(), SuggestRequest{TenantID: "t1", Context: c.context, Target: "serviceX", MetricHints: c.hints})
			require.NoError(t, err)
			require.Equal(t, s, again, "deterministic")
		})
	}
}

func TestSimulatedAssess(t *testing.T) {
	t.Parallel()
	sim := NewSimulated()
	ctx := context.Background()
	req := AssessRequest{TenantID: "t1", Action: "scale", Target: "serviceX", Regions: []string{"us-east", "eu-west"},
		Parameters: map[string]any{"replicas_delta": 1}}
	a, err := sim.Assess(ctx, req)
	require.NoError(t, err)
	require.NoError(t, validateAssessment(a))
	require.Equal(t, SimulatedModel, a.Model)
	require.GreaterOrEqual(t, a.SuccessProbability, 0.6)
	require.LessOrEqual(t, a.SuccessProbability, 0.95)

	// Region order and parameter number types do not matter.
	same := req
	same.Regions = []string{"eu-west", "us-east"}
	same.Parameters = map[string]any{"replicas_delta": 1.0}
	b, err := sim.Assess(ctx, same)
	require.NoError(t, err)
	require.Equal(t, a, b)

	// Spread: different targets land at different points of the range.
	seen := map[float64]bool{}
	for _, target := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		r := req
		r.Target = target
		x, err := sim.Assess(ctx, r)
		require.NoError(t, err)
		require.GreaterOrEqual(t, x.SuccessProbability, 0.6)
		require.LessOrEqual(t, x.SuccessProbability, 0.95)
		seen[x.SuccessProbability] = true
	}
	require.Greater(t, len(seen), 4)
}

func TestSimulatedAssessPenalties(t *testing.T) {
	t.Parallel()
	sim := NewSimulated()
	ctx := context.Background()
	base := AssessRequest{TenantID: "t1", Action: "scale", Target: "serviceX", Parameters: map[string]any{"replicas_delta": 1}}
	a, err := sim.Assess(ctx, base)
	require.NoError(t, err)
	// The penalty is relative to the base of the same fingerprint, so compare via the
	// rationale and bounds rather than exact equality.
	big := base
	big.Parameters = map[string]any{"replicas_delta": -9}
	b, err := sim.Assess(ctx, big)
	require.NoError(t, err)
	require.Contains(t, b.Rationale, "-0.25 for changing 9 replicas")
	require.LessOrEqual(t, b.SuccessProbability, 0.95-0.25+1e-9)

	wide := base
	wide.Regions = []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	w, err := sim.Assess(ctx, wide)
	require.NoError(t, err)
	require.Contains(t, w.Rationale, "-0.15 for touching 8 regions")

	odd := base
	odd.Action = "migrate"
	o, err := sim.Assess(ctx, odd)
	require.NoError(t, err)
	require.Contains(t, o.Rationale, `unfamiliar action "migrate"`)
	require.NotEqual(t, a.Rationale, o.Rationale)
}

func TestSimulatedHonoursCancellation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewSimulated().Assess(ctx, AssessRequest{})
	require.True(t, errors.Is(err, context.Canceled))
	_, err = NewSimulated().Suggest(ctx, SuggestRequest{})
	require.ErrorIs(t, err, context.Canceled)
}
