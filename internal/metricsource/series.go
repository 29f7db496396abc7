package metricsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The metrics a canary is judged on.
const (
	// MetricLatencyP99 is the 99th percentile request latency, milliseconds.
	MetricLatencyP99 = "latency_p99"
	// MetricErrorRate is the share of 5xx responses.
	MetricErrorRate = "error_rate"
	// MetricThroughput is requests per second.
	MetricThroughput = "throughput"
)

// SeriesMetrics lists the metrics Series answers for.
var SeriesMetrics = []string{MetricLatencyP99, MetricErrorRate, MetricThroughput}

// MaxSeriesPoints bounds one series (window / step).
const MaxSeriesPoints = 1000

// SeriesSource reads a metric's samples over a time window: a canary's and its
// baseline's, for the judge (internal/judge).
type SeriesSource interface {
	// Series returns one sample of metric per step over the window ending now, for
	// target in regions; an empty series when there is no data. Values may be NaN
	// (no traffic in a step).
	Series(ctx context.Context, tenantID, target string, regions []string, metric string, window, step time.Duration) ([]float64, error)
}

// ErrUnknownMetric: Series was asked for a metric outside SeriesMetrics.
var ErrUnknownMetric = errors.New("metricsource: unknown metric")

func checkSeries(metric string, window, step time.Duration) error {
	if !slices.Contains(SeriesMetrics, metric) {
		return fmt.Errorf("%w %q (known: %s)", ErrUnknownMetric, metric, strings.Join(SeriesMetrics, ", "))
	}
	if step <= 0 || window < step || window/step > MaxSeriesPoints {
		return fmt.Errorf("metricsource: window %s / step %s: want 1-%d points", window, step, MaxSeriesPoints)
	}
	return nil
}

// SeriesQuery is the PromQL range query of metric for target in regions, built as
// BuildQueries builds its queries (same labels, same escaping), over 1-minute rates.
func SeriesQuery(target string, regions []string, metric string) string {
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
	switch metric {
	case MetricLatencyP99:
		return `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{` + svc + `}[1m]))) * 1000`
	case MetricErrorRate:
		return `sum(rate(http_requests_total{` + ServiceLabel + `=` + t + `,code=~"5.."` + r + `}[1m])) / sum(rate(http_requests_total{` + svc + `}[1m]))`
	case MetricThroughput:
		return `sum(rate(http_requests_total{` + svc + `}[1m]))`
	}
	return ""
}

// Series implements SeriesSource with GET /api/v1/query_range.
func (p *prometheus) Series(ctx context.Context, _, target string, regions []string, metric string, window, step time.Duration) ([]float64, error) {
	if err := checkSeries(metric, window, step); err != nil {
		return nil, err
	}
	end := time.Now()
	params := url.Values{
		"query": {SeriesQuery(target, regions, metric)},
		"start": {strconv.FormatFloat(float64(end.Add(-window).UnixMilli())/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	body, code, err := p.get(ctx, "/api/v1/query_range", params)
	if err != nil {
		return nil, fmt.Errorf("metricsource: %s: %w", metric, err)
	}
	out, err := ParseMatrix(body)
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		apiErr.HTTPStatus = code
	}
	if err != nil {
		return nil, fmt.Errorf("metricsource: %s: %w", metric, err)
	}
	return out, nil
}

// ParseMatrix reads a range query answer: a "matrix" of at most one series (none: no
// data). Values that are not finite read as NaN. A "status":"error" body is an
// *APIError; anything else malformed wraps ErrInvalidResponse.
func ParseMatrix(body []byte) ([]float64, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	switch r.Status {
	case "success":
	case "error":
		return nil, &APIError{HTTPStatus: http.StatusOK, Type: r.ErrorType, Message: truncate(r.Error, 200)}
	default:
		return nil, fmt.Errorf("%w: status %q", ErrInvalidResponse, truncate(r.Status, 40))
	}
	if r.Data == nil || r.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("%w: want a matrix", ErrInvalidResponse)
	}
	var series []struct {
		Values []json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(r.Data.Result, &series); err != nil {
		return nil, fmt.Errorf("%w: matrix: %w", ErrInvalidResponse, err)
	}
	switch len(series) {
	case 0:
		return []float64{}, nil
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d series, want at most 1", ErrInvalidResponse, len(series))
	}
	if len(series[0].Values) > MaxSeriesPoints {
		return nil, fmt.Errorf("%w: %d points, more than %d", ErrInvalidResponse, len(series[0].Values), MaxSeriesPoints)
	}
	out := make([]float64, 0, len(series[0].Values))
	for _, raw := range series[0].Values {
		v, err := parseValue(raw)
		if err != nil {
			return nil, err
		}
		if math.IsInf(v, 0) {
			v = math.NaN()
		}
		out = append(out, v)
	}
	return out, nil
}

// Faults make the simulated source's series worse for some (tenant, target, region), so
// a canary judgement can be exercised: a degradation factor (latency and error rate
// multiplied by it, throughput divided), or no data at all. Development and tests only:
// set with Simulated.SetFault, or at start from FABRIC_SIM_METRIC_FAULTS
// (ParseFaults).
type Fault struct {
	// Degrade multiplies latency and error rate and divides throughput (> 0; 1 = none).
	Degrade float64
	// NoData makes the series empty.
	NoData bool
}

// FaultsEnv is the environment variable the fabric reads the simulated source's faults
// from in simulation mode (docs/operations.md).
const FaultsEnv = "FABRIC_SIM_METRIC_FAULTS"

// maxFaults bounds a fault list.
const maxFaults = 100

// ParseFaults reads "tenant/target/region=<factor>|nodata" entries separated by commas,
// e.g. "t1/serviceX/eu-west=3,t1/serviceY/us-east=nodata". Factors are finite numbers in
// (0, 1000].
func ParseFaults(s string) (map[FaultKey]Fault, error) {
	out := map[FaultKey]Fault{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	entries := strings.Split(s, ",")
	if len(entries) > maxFaults {
		return nil, fmt.Errorf("metricsource: %s: at most %d entries", FaultsEnv, maxFaults)
	}
	for i, e := range entries {
		key, val, ok := strings.Cut(strings.TrimSpace(e), "=")
		parts := strings.Split(key, "/")
		if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("metricsource: %s entry %d: want tenant/target/region=<factor>|nodata", FaultsEnv, i+1)
		}
		k := FaultKey{TenantID: parts[0], Target: parts[1], Region: parts[2]}
		if val == "nodata" {
			out[k] = Fault{NoData: true}
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || !(f > 0 && f <= 1000) {
			return nil, fmt.Errorf("metricsource: %s entry %d: factor must be a number in (0, 1000] or nodata", FaultsEnv, i+1)
		}
		out[k] = Fault{Degrade: f}
	}
	return out, nil
}

// FaultKey names one target in one region of one tenant.
type FaultKey struct{ TenantID, Target, Region string }

// Simulated is the simulated source with series and faults. Its Snapshot is the
// package's simulated reading; its series are deterministic: a level and a noise
// sequence from a hash of (tenant, target, metric), the same in every region, so that
// healthy regions read exactly alike (a healthy canary always passes; only a fault
// makes one region differ).
type Simulated struct {
	simulated
	mu     sync.RWMutex
	faults map[FaultKey]Fault
}

// NewSimulatedSeries returns the simulated source with faults (nil: none).
func NewSimulatedSeries(faults map[FaultKey]Fault) *Simulated {
	s := &Simulated{faults: map[FaultKey]Fault{}}
	for k, f := range faults {
		s.faults[k] = f
	}
	return s
}

// SetFault sets (or, with the zero Fault, clears) the fault of one target in one region.
func (s *Simulated) SetFault(k FaultKey, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Fault{}) {
		delete(s.faults, k)
		return
	}
	s.faults[k] = f
}

func (s *Simulated) fault(k FaultKey) Fault {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.faults[k]
}

// Series implements SeriesSource: one sample per step and region (a series over several
// regions pools their samples).
func (s *Simulated) Series(ctx context.Context, tenantID, target string, regions []string, metric string, window, step time.Duration) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkSeries(metric, window, step); err != nil {
		return nil, err
	}
	n := int(window / step)
	rs := slices.Clone(regions)
	slices.Sort(rs)
	rs = slices.Compact(rs)
	level := unit(tenantID, target, metric, "", 0)
	var base, spread float64
	switch metric {
	case MetricLatencyP99:
		base, spread = 50+400*level, 0.05
	case MetricErrorRate:
		base, spread = 0.001+0.01*level, 0.10
	case MetricThroughput:
		base, spread = 50+500*level, 0.05
	}
	out := make([]float64, 0, n*len(rs))
	for _, region := range rs {
		f := s.fault(FaultKey{TenantID: tenantID, Target: target, Region: region})
		if f.NoData {
			continue
		}
		factor := 1.0
		if f.Degrade > 0 {
			factor = f.Degrade
		}
		for i := range n {
			v := base * (1 + spread*(2*unit(tenantID, target, metric, "", i)-1))
			if metric == MetricThroughput {
				v /= factor
			} else {
				v *= factor
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// unit is a deterministic number in [0,1) from its arguments.
func unit(tenantID, target, metric, region string, i int) float64 {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d", tenantID, target, metric, region, i)
	return float64(h.Sum64()>>11) / (1 << 53)
}
