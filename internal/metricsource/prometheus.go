package metricsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/decision-fabric/fabric/internal/redact"
)

// PrometheusName is the Name of the Prometheus source.
const PrometheusName = "prometheus"

// DefaultTimeout bounds one Prometheus query when NewPrometheus gets no client.
const DefaultTimeout = 5 * time.Second

// maxResponseBytes caps a query answer; ours aggregate to one series, a few hundred bytes.
const maxResponseBytes = 1 << 20

// Label names the queries match on. Targets are matched on `service` (request
// metrics) and `container` (cAdvisor/kube-state-metrics CPU), regions on `region`.
const (
	ServiceLabel   = "service"
	ContainerLabel = "container"
	RegionLabel    = "region"
)

// ErrInvalidResponse wraps answers that are not the Prometheus HTTP API's JSON or not
// an instant vector/scalar of at most one series.
var ErrInvalidResponse = errors.New("metricsource: invalid response")

// APIError is an error answer from Prometheus ("status":"error"), with or without a
// non-2xx status code.
type APIError struct {
	HTTPStatus int    // e.g. 400, 422, 503; 200 when the body said "error" with 200
	Type       string // Prometheus errorType, e.g. "bad_data", "timeout"
	Message    string // Prometheus error text, truncated
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("metricsource: prometheus answered HTTP %d", e.HTTPStatus)
	if e.Type != "" {
		msg += " " + e.Type
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Queries are the PromQL instant queries one Snapshot runs.
type Queries struct {
	// ErrorRate: share of 5xx responses over the last 5 minutes.
	ErrorRate string
	// Requests: requests in the last 5 minutes (becomes Metrics.Samples).
	Requests string
	// CPU: CPU seconds used per second over CPU requested.
	CPU string
	// P99: 99th percentile latency in milliseconds from the request-duration histogram.
	P99 string
}

// BuildQueries returns the PromQL for target in regions. With T the target as a quoted
// PromQL string and R `,region=~"<r1>|<r2>"` (empty when no regions are given):
//
//	ErrorRate: sum(rate(http_requests_total{service=T,code=~"5.."R}[5m]))
//	           / sum(rate(http_requests_total{service=T R}[5m]))
//	Requests:  sum(increase(http_requests_total{service=T R}[5m]))
//	CPU:       sum(rate(container_cpu_usage_seconds_total{container=T R}[5m]))
//	           / sum(kube_pod_container_resource_requests{resource="cpu",container=T R})
//	P99:       histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service=T R}[5m]))) * 1000
//
// Injection: the target is a PromQL double-quoted string built with strconv.Quote
// (PromQL uses Go's escaping rules), so quotes, backslashes, braces and newlines in it
// stay inside the string. Regions are regexp-escaped (regexp.QuoteMeta, so "." or "|"
// match literally) and then quoted the same way.
func BuildQueries(target string, regions []string) Queries {
	t := strconv.Quote(target)
	r := ""
	if len(regions) > 0 {
		alts := make([]string, len(regions))
		for i, reg := range regions {
			alts[i] = regexp.QuoteMeta(reg)
		}
		r = "," + RegionLabel + "=~" + strconv.Quote(strings.Join(alts, "|"))
	}
	svc := ServiceLabel + "=" + t + r
	return Queries{
		ErrorRate: `sum(rate(http_requests_total{` + ServiceLabel + `=` + t + `,code=~"5.."` + r + `}[5m])) / sum(rate(http_requests_total{` + svc + `}[5m]))`,
		Requests:  `sum(increase(http_requests_total{` + svc + `}[5m]))`,
		CPU: `sum(rate(container_cpu_usage_seconds_total{` + ContainerLabel + `=` + t + r + `}[5m])) / sum(kube_pod_container_resource_requests{resource="cpu",` +
			ContainerLabel + `=` + t + r + `})`,
		P99: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{` + svc + `}[5m]))) * 1000`,
	}
}

type prometheus struct {
	base   string
	client *http.Client
}

// NewPrometheus returns a source reading the Prometheus HTTP API at baseURL (PROM_URL,
// e.g. "http://prometheus:9090"): GET {base}/api/v1/query?query=... for each of
// BuildQueries' queries, in a fixed order. An empty result or a NaN/Inf value (no
// traffic: 0/0) reads as 0; Samples then says whether there was traffic. A nil client
// means one with DefaultTimeout.
func NewPrometheus(baseURL string, client *http.Client) Source {
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	return &prometheus{base: strings.TrimRight(baseURL, "/"), client: client}
}

func (p *prometheus) Name() string { return PrometheusName }

func (p *prometheus) Snapshot(ctx context.Context, _, target string, regions []string) (Metrics, error) {
	q := BuildQueries(target, regions)
	var m Metrics
	for _, step := range []struct {
		name  string
		query string
		set   func(float64)
	}{
		{"requests", q.Requests, func(v float64) { m.Samples = int(math.Round(math.Max(0, math.Min(v, math.MaxInt32)))) }},
		{"error rate", q.ErrorRate, func(v float64) { m.ErrorRate = math.Max(0, math.Min(1, v)) }},
		{"cpu", q.CPU, func(v float64) { m.CPUUtilisation = math.Max(0, v) }},
		{"p99 latency", q.P99, func(v float64) { m.P99LatencyMS = math.Max(0, v) }},
	} {
		v, ok, err := p.query(ctx, step.query)
		if err != nil {
			return Metrics{}, fmt.Errorf("metricsource: %s: %w", step.name, err)
		}
		if ok {
			step.set(v)
		}
	}
	return m, nil
}

// query runs one instant query.
func (p *prometheus) query(ctx context.Context, q string) (float64, bool, error) {
	body, code, err := p.get(ctx, "/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		return 0, false, err
	}
	v, ok, err := parseInstant(body)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		apiErr.HTTPStatus = code
	}
	return v, ok, err
}

// get sends one API request and returns a 2xx answer's body (bounded) and status; a
// non-2xx answer is an *APIError.
func (p *prometheus) get(ctx context.Context, path string, params url.Values) ([]byte, int, error) {
	u := p.base + path + "?" + params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, 0, redact.TransportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read response: %w", redact.TransportError(err))
	}
	if len(body) > maxResponseBytes {
		return nil, 0, fmt.Errorf("%w: larger than %d bytes", ErrInvalidResponse, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &APIError{HTTPStatus: resp.StatusCode}
		var r apiResponse
		if json.Unmarshal(body, &r) == nil {
			apiErr.Type, apiErr.Message = r.ErrorType, truncate(r.Error, 200)
		}
		return nil, 0, apiErr
	}
	return body, resp.StatusCode, nil
}

// apiResponse is the Prometheus HTTP API envelope.
type apiResponse struct {
	Status string `json:"status"`
	Data   *struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  json.RawMessage   `json:"value"`
}

// parseInstant reads an instant query answer: a "vector" of at most one series or a
// "scalar". ok is false for an empty vector or a non-finite value (NaN, ±Inf). A
// "status":"error" body is an *APIError; anything else malformed wraps
// ErrInvalidResponse.
func parseInstant(body []byte) (value float64, ok bool, err error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	switch r.Status {
	case "success":
	case "error":
		return 0, false, &APIError{HTTPStatus: http.StatusOK, Type: r.ErrorType, Message: truncate(r.Error, 200)}
	default:
		return 0, false, fmt.Errorf("%w: status %q", ErrInvalidResponse, truncate(r.Status, 40))
	}
	if r.Data == nil {
		return 0, false, fmt.Errorf("%w: no data", ErrInvalidResponse)
	}
	var pair json.RawMessage
	switch r.Data.ResultType {
	case "vector":
		var vec []sample
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			return 0, false, fmt.Errorf("%w: vector: %w", ErrInvalidResponse, err)
		}
		switch len(vec) {
		case 0:
			return 0, false, nil
		case 1:
			pair = vec[0].Value
		default:
			return 0, false, fmt.Errorf("%w: %d series, want at most 1", ErrInvalidResponse, len(vec))
		}
	case "scalar":
		pair = r.Data.Result
	default:
		return 0, false, fmt.Errorf("%w: result type %q, want vector or scalar", ErrInvalidResponse, truncate(r.Data.ResultType, 40))
	}
	v, err := parseValue(pair)
	if err != nil {
		return 0, false, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, nil
	}
	return v, true, nil
}

// parseValue reads [<unix seconds>, "<number>"].
func parseValue(raw json.RawMessage) (float64, error) {
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return 0, fmt.Errorf("%w: value is not a [time, \"number\"] pair", ErrInvalidResponse)
	}
	var ts float64
	if err := json.Unmarshal(pair[0], &ts); err != nil {
		return 0, fmt.Errorf("%w: sample time: %w", ErrInvalidResponse, err)
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, fmt.Errorf("%w: sample value is not a string", ErrInvalidResponse)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: sample value %q is not a number", ErrInvalidResponse, truncate(s, 40))
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func round(x, scale float64) float64 { return math.Round(x*scale) / scale }
