package metricsource

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Real Prometheus HTTP API bodies (as returned by Prometheus 2.x/3.x for instant queries).
const (
	vectorOne   = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1735689600.123,"%s"]}]}}`
	vectorEmpty = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	scalarBody  = `{"status":"success","data":{"resultType":"scalar","result":[1735689600.123,"0.25"]}}`
	vectorTwo   = `{"status":"success","data":{"resultType":"vector","result":[` +
		`{"metric":{"region":"eu-west"},"value":[1735689600,"1"]},{"metric":{"region":"us-east"},"value":[1735689600,"2"]}]}}`
	matrixBody = `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1735689600,"1"]]}]}}`
	errorBody  = `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:10: parse error: unexpected \"}\""}`
	warnBody   = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1735689600,"0.5"]}]},"warnings":["PromQL info: metric might not be a counter"]}`
)

func vec(v string) string { return strings.Replace(vectorOne, "%s", v, 1) }

func TestParseInstant(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		body    string
		want    float64
		ok      bool
		errIs   error
		apiType string
	}{
		{name: "vector", body: vec("0.0042"), want: 0.0042, ok: true},
		{name: "scalar", body: scalarBody, want: 0.25, ok: true},
		{name: "warnings are ignored", body: warnBody, want: 0.5, ok: true},
		{name: "empty vector", body: vectorEmpty},
		{name: "NaN is no data", body: vec("NaN")},
		{name: "+Inf is no data", body: vec("+Inf")},
		{name: "status error", body: errorBody, apiType: "bad_data"},
		{name: "two series", body: vectorTwo, errIs: ErrInvalidResponse},
		{name: "matrix", body: matrixBody, errIs: ErrInvalidResponse},
		{name: "truncated", body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"`, errIs: ErrInvalidResponse},
		{name: "html", body: `<html>502 Bad Gateway</html>`, errIs: ErrInvalidResponse},
		{name: "value not a string", body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,1]}]}}`, errIs: ErrInvalidResponse},
		{name: "value not a number", body: vec("abc"), errIs: ErrInvalidResponse},
		{name: "short pair", body: `{"status":"success","data":{"resultType":"scalar","result":[1]}}`, errIs: ErrInvalidResponse},
		{name: "no data", body: `{"status":"success"}`, errIs: ErrInvalidResponse},
		{name: "unknown status", body: `{"status":"maybe"}`, errIs: ErrInvalidResponse},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			v, ok, err := parseInstant([]byte(c.body))
			switch {
			case c.apiType != "":
				var ae *APIError
				require.ErrorAs(t, err, &ae)
				require.Equal(t, c.apiType, ae.Type)
				require.Contains(t, ae.Message, "parse error")
			case c.errIs != nil:
				require.ErrorIs(t, err, c.errIs)
			default:
				require.NoError(t, err)
				require.Equal(t, c.ok, ok)
				require.Equal(t, c.want, v)
			}
		})
	}
}

// promServer answers /api/v1/query by looking the query up in answers (by substring),
// and records every query it was asked.
type promServer struct {
	mu      sync.Mutex
	queries []string
	answer  func(q string) (int, string)
}

func (p *promServer) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query().Get("query")
		p.mu.Lock()
		p.queries = append(p.queries, q)
		p.mu.Unlock()
		code, body := p.answer(q)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPrometheusSnapshot(t *testing.T) {
	t.Parallel()
	p := &promServer{answer: func(q string) (int, string) {
		switch {
		case strings.HasPrefix(q, "sum(increase("):
			return 200, vec("1234.4")
		case strings.Contains(q, `code=~"5.."`):
			return 200, vec("0.004")
		case strings.Contains(q, "container_cpu_usage_seconds_total"):
			return 200, vec("0.62")
		case strings.HasPrefix(q, "histogram_quantile"):
			return 200, vec("187.5")
		}
		return 400, errorBody
	}}
	src := NewPrometheus(p.start(t)+"/", nil)
	require.Equal(t, PrometheusName, src.Name())
	m, err := src.Snapshot(context.Background(), "t1", "serviceX", []string{"eu-west", "us-east"})
	require.NoError(t, err)
	require.Equal(t, Metrics{ErrorRate: 0.004, CPUUtilisation: 0.62, P99LatencyMS: 187.5, Samples: 1234}, m)
	require.Len(t, p.queries, 4)
	for _, q := range p.queries {
		require.Contains(t, q, `region=~"eu-west|us-east"`)
		require.True(t, strings.Contains(q, `service="serviceX"`) || strings.Contains(q, `container="serviceX"`), q)
	}
}

func TestPrometheusNoTraffic(t *testing.T) {
	t.Parallel()
	p := &promServer{answer: func(q string) (int, string) {
		if strings.Contains(q, "/") { // the ratios: 0/0
			return 200, vec("NaN")
		}
		return 200, vectorEmpty
	}}
	m, err := NewPrometheus(p.start(t), nil).Snapshot(context.Background(), "t1", "quiet", nil)
	require.NoError(t, err)
	require.Equal(t, Metrics{}, m)
	for _, q := range p.queries {
		require.NotContains(t, q, "region", "no region matcher without regions")
	}
}

func TestPrometheusErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		code  int
		body  string
		check func(t *testing.T, err error)
	}{
		{"status error with 400", 400, errorBody, func(t *testing.T, err error) {
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, 400, ae.HTTPStatus)
			require.Equal(t, "bad_data", ae.Type)
		}},
		{"status error with 200", 200, errorBody, func(t *testing.T, err error) {
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, 200, ae.HTTPStatus)
		}},
		{"503 without a body", 503, "", func(t *testing.T, err error) {
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, 503, ae.HTTPStatus)
			require.Contains(t, err.Error(), "503")
		}},
		{"malformed", 200, `{"status":"success","data":`, func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrInvalidResponse)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := &promServer{answer: func(string) (int, string) { return c.code, c.body }}
			_, err := NewPrometheus(p.start(t), nil).Snapshot(context.Background(), "t1", "serviceX", nil)
			require.Error(t, err)
			c.check(t, err)
		})
	}
}

func TestPrometheusTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := NewPrometheus(srv.URL, nil).Snapshot(ctx, "t1", "serviceX", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestPrometheusErrorHidesCredentials(t *testing.T) {
	t.Parallel()
	_, err := NewPrometheus("http://admin:s3cret@127.0.0.1:1", &http.Client{Timeout: time.Second}).
		Snapshot(context.Background(), "t1", "serviceX", nil)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

// TestQueriesEscapeTargets: whatever the target, it stays one string literal: the
// query keeps exactly the label matchers we wrote.
func TestQueriesEscapeTargets(t *testing.T) {
	t.Parallel()
	evil := `x"} or vector(1) or foo{a="` + "\n\\"
	q := BuildQueries(evil, []string{"eu.west", "a|b"})
	want := `service="x\"} or vector(1) or foo{a=\"\n\\"`
	require.Contains(t, q.Requests, want)
	require.Contains(t, q.CPU, `container="x\"} or vector(1) or foo{a=\"\n\\"`)
	require.Contains(t, q.Requests, `region=~"eu\\.west|a\\|b"`)
	for _, s := range []string{q.ErrorRate, q.Requests, q.CPU, q.P99} {
		require.NotContains(t, s, "\n", "raw newline would end the literal")
		require.Equal(t, 0, strings.Count(unquoted(s), "or vector"), "injected PromQL outside a string: %s", s)
	}
}

// unquoted removes the contents of double-quoted PromQL strings.
func unquoted(s string) string {
	var b strings.Builder
	in, esc := false, false
	for _, r := range s {
		switch {
		case esc:
			esc = false
		case in && r == '\\':
			esc = true
		case r == '"':
			in = !in
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestQueriesDocumented(t *testing.T) {
	t.Parallel()
	q := BuildQueries("serviceX", nil)
	require.Equal(t, `sum(rate(http_requests_total{service="serviceX",code=~"5.."}[5m])) / sum(rate(http_requests_total{service="serviceX"}[5m]))`, q.ErrorRate)
	require.Equal(t, `sum(increase(http_requests_total{service="serviceX"}[5m]))`, q.Requests)
	require.Equal(t, `sum(rate(container_cpu_usage_seconds_total{container="serviceX"}[5m])) / sum(kube_pod_container_resource_requests{resource="cpu",container="serviceX"})`, q.CPU)
	require.Equal(t, `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="serviceX"}[5m]))) * 1000`, q.P99)
}

func TestSimulated(t *testing.T) {
	t.Parallel()
	src := NewSimulated()
	require.Equal(t, SimulatedName, src.Name())
	ctx := context.Background()
	a, err := src.Snapshot(ctx, "t1", "serviceX", []string{"us-east", "eu-west"})
	require.NoError(t, err)
	b, err := src.Snapshot(ctx, "t1", "serviceX", []string{"eu-west", "us-east", "eu-west"})
	require.NoError(t, err)
	require.Equal(t, a, b, "region order and duplicates do not matter")
	distinct := map[Metrics]bool{}
	for _, target := range []string{"a", "b", "c", "d", "e", "f"} {
		m, err := src.Snapshot(ctx, "t1", target, nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, m.ErrorRate, 0.0)
		require.Less(t, m.ErrorRate, 0.02)
		require.GreaterOrEqual(t, m.CPUUtilisation, 0.2)
		require.Less(t, m.CPUUtilisation, 0.9+1e-9)
		require.GreaterOrEqual(t, m.P99LatencyMS, 50.0)
		require.GreaterOrEqual(t, m.Samples, 500)
		require.Less(t, m.Samples, 5000)
		distinct[m] = true
	}
	require.Len(t, distinct, 6)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = src.Snapshot(cctx, "t1", "a", nil)
	require.ErrorIs(t, err, context.Canceled)
}

// FuzzParseInstant: the parser of untrusted Prometheus answers never panics, and what
// it accepts is finite.
func FuzzParseInstant(f *testing.F) {
	for _, s := range []string{vec("0.5"), vec("NaN"), vectorEmpty, scalarBody, vectorTwo, matrixBody, errorBody, warnBody, `{}`, `null`, `[]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		v, ok, err := parseInstant(body)
		if err != nil {
			if ok || v != 0 {
				t.Fatalf("error with a value: %v %v %v", v, ok, err)
			}
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("non-finite value accepted: %v", v)
		}
		if !ok && v != 0 {
			t.Fatalf("value without ok: %v", v)
		}
	})
}
