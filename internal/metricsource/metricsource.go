// Package metricsource reads live metrics of a target (error rate, CPU, latency) for the
// confidence scorer. [NewPrometheus] queries a Prometheus server (PROM_URL);
// [NewSimulated] derives stable readings from a hash, for simulation mode and tests.
//
// Contracts every Source MUST keep: returned values are finite, ErrorRate and
// CPUUtilisation are >= 0 (CPU may exceed 1 when usage is above the requested CPU), and
// Samples is the number of requests the error rate was computed over (0 = no traffic
// seen, so the rates carry no information). Errors never carry credentials.
package metricsource

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// Metrics is one reading of a target across the regions asked for.
type Metrics struct {
	// ErrorRate is the fraction of requests that failed (HTTP 5xx) over the window, in [0,1].
	ErrorRate float64 `json:"error_rate"`
	// CPUUtilisation is CPU used over CPU requested (1 = exactly the request).
	CPUUtilisation float64 `json:"cpu_utilisation"`
	// P99LatencyMS is the 99th percentile request latency in milliseconds.
	P99LatencyMS float64 `json:"p99_latency_ms"`
	// Samples is the number of requests seen in the window.
	Samples int `json:"samples"`
}

// Source reads metrics.
type Source interface {
	// Snapshot reads the target's metrics in regions (all regions when empty).
	Snapshot(ctx context.Context, tenantID, target string, regions []string) (Metrics, error)
	// Name identifies the source in logs and explanations ("prometheus", "simulated").
	Name() string
}

// SimulatedName is the Name of the simulated source.
const SimulatedName = "simulated"

type simulated struct{}

// NewSimulated returns a source whose readings are a pure function of (tenant, target,
// sorted de-duplicated regions), via FNV-1a: ErrorRate in [0, 0.02), CPUUtilisation in
// [0.20, 0.90), P99LatencyMS in [50, 450) and Samples in [500, 5000). It never fails
// except on a cancelled context.
func NewSimulated() Source { return simulated{} }

func (simulated) Name() string { return SimulatedName }

func (simulated) Snapshot(ctx context.Context, tenantID, target string, regions []string) (Metrics, error) {
	if err := ctx.Err(); err != nil {
		return Metrics{}, err
	}
	rs := slices.Clone(regions)
	slices.Sort(rs)
	rs = slices.Compact(rs)
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s\x00%s\x00%s", tenantID, target, strings.Join(rs, ","))
	sum := h.Sum64()
	// Four independent-enough 16-bit slices of the hash, each mapped to [0,1).
	part := func(i uint) float64 { return float64((sum>>(16*i))&0xffff) / 65536 }
	return Metrics{
		ErrorRate:      round(0.02*part(0), 1e6),
		CPUUtilisation: round(0.20+0.70*part(1), 1e4),
		P99LatencyMS:   round(50+400*part(2), 10),
		Samples:        500 + int(4500*part(3)),
	}, nil
}
