package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/judge"
	"github.com/decision-fabric/fabric/internal/metricsource"
)

// Canary configures how the sim-canary judges the waves of a canary rollout
// (docs/operations.md, "Canary rollouts and the emergency stop").
type Canary struct {
	// Judge is the judgement of every tenant's waves; without metrics, the defaults:
	// latency_p99 must not increase, error_rate must not increase (critical),
	// throughput must not decrease.
	Judge CanaryJudge `yaml:"judge"`
	// Tenants replaces Judge for the tenants listed.
	Tenants map[string]CanaryJudge `yaml:"tenants"`
	// Window and Step are the metrics compared per wave: the last Window, one sample per
	// Step (0 = 10m and 30s; at most 1000 samples).
	Window Duration `yaml:"window"`
	Step   Duration `yaml:"step"`
	// Settle is how long a wave runs before it is judged; 0 = Window with Prometheus
	// (the metrics must cover the new state), at once on the simulated series.
	Settle Duration `yaml:"settle"`
}

// CanaryJudge is one judgement configuration (internal/judge).
type CanaryJudge struct {
	// Metrics judged; names from metricsource.SeriesMetrics.
	Metrics []CanaryMetric `yaml:"metrics"`
	// Confidence level of the comparison; 0 = 0.98.
	Confidence float64 `yaml:"confidence"`
	// PassScore and MarginalScore are the verdict thresholds on the 0-100 score; 0 = 95
	// and 75.
	PassScore     float64 `yaml:"pass_score"`
	MarginalScore float64 `yaml:"marginal_score"`
}

// CanaryMetric is one metric of a judgement.
type CanaryMetric struct {
	// Name: latency_p99, error_rate or throughput.
	Name string `yaml:"name"`
	// Direction that fails: increase, decrease or either.
	Direction string `yaml:"direction"`
	// Critical: a significant change fails the wave on its own.
	Critical bool `yaml:"critical"`
	// Tolerance of the shift (0 = 0.25).
	Tolerance float64 `yaml:"tolerance"`
}

// JudgeConfig is j as the judge takes it; a metric without data never passes. The
// zero config (no metrics) means the sim-canary's defaults.
func (j CanaryJudge) JudgeConfig() judge.Config {
	out := judge.Config{Confidence: j.Confidence, PassScore: j.PassScore, MarginalScore: j.MarginalScore}
	for _, m := range j.Metrics {
		out.Metrics = append(out.Metrics, judge.Metric{Name: m.Name, Group: m.Name, Direction: judge.Direction(m.Direction),
			Critical: m.Critical, Tolerance: m.Tolerance, NodataPolicy: judge.NodataFail})
	}
	return out
}

func (j CanaryJudge) validate(path string) error {
	if len(j.Metrics) == 0 {
		if j.Confidence != 0 || j.PassScore != 0 || j.MarginalScore != 0 {
			return fmt.Errorf("%s: thresholds without metrics", path)
		}
		return nil
	}
	for i, m := range j.Metrics {
		if !slices.Contains(metricsource.SeriesMetrics, m.Name) {
			return fmt.Errorf("%s.metrics[%d].name %q: want one of %s", path, i, m.Name, strings.Join(metricsource.SeriesMetrics, ", "))
		}
	}
	if err := j.JudgeConfig().Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Validate checks every judgement and duration.
func (c Canary) Validate() error {
	if c.Window < 0 || c.Step < 0 || c.Settle < 0 {
		return fmt.Errorf("canary: window, step and settle must not be negative")
	}
	if c.Window > 0 && c.Step > 0 && (c.Step > c.Window || c.Window/c.Step > metricsource.MaxSeriesPoints) {
		return fmt.Errorf("canary: window %s / step %s: want 1-%d samples", time.Duration(c.Window), time.Duration(c.Step), metricsource.MaxSeriesPoints)
	}
	if err := c.Judge.validate("canary.judge"); err != nil {
		return err
	}
	tenants := make([]string, 0, len(c.Tenants))
	for t := range c.Tenants {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, t := range tenants {
		if t == "" {
			return fmt.Errorf("canary.tenants: an empty tenant id")
		}
		if len(c.Tenants[t].Metrics) == 0 {
			return fmt.Errorf("canary.tenants.%s: no metrics", t)
		}
		if err := c.Tenants[t].validate("canary.tenants." + t); err != nil {
			return err
		}
	}
	return nil
}
