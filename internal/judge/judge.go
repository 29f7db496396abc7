package judge

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Direction says which change of a metric counts as a failure, as the
// "direction" of Kayenta's canary analysis configuration.
type Direction string

const (
	// Increase: only a canary significantly higher than the baseline fails
	// (classified High); a lower canary passes. Latency, error rates.
	Increase Direction = "increase"
	// Decrease: only a canary significantly lower than the baseline fails
	// (classified Low). Throughput, success rates.
	Decrease Direction = "decrease"
	// Either: a significant change either way fails. Kayenta's default and
	// the meaning of "".
	Either Direction = "either"
)

// NodataPolicy says what a metric without data (after NaN and outlier
// removal) does to the score.
type NodataPolicy string

const (
	// NodataFail is Kayenta's mustHaveData=true: the metric is classified
	// NodataFailMetric and counts as a failing metric in its group.
	NodataFail NodataPolicy = "fail"
	// NodataIgnore is Kayenta's default (mustHaveData=false) and the meaning
	// of "": the metric is classified Nodata and left out of its group's
	// score. If half or more of the scored metrics are Nodata the canary
	// fails regardless (Kayenta's NODATA_THRESHOLD), and so does a run in
	// which no metric has data.
	NodataIgnore NodataPolicy = "ignore"
)

// NaNStrategy is Kayenta's nanStrategy: what happens to NaN (and here also
// ±Inf) samples before the comparison.
type NaNStrategy string

const (
	// NaNRemove drops them (Kayenta's default and the meaning of "").
	NaNRemove NaNStrategy = "remove"
	// NaNReplace replaces them with 0, as Kayenta's Transforms.replaceNaNs.
	NaNReplace NaNStrategy = "replace"
)

// EffectSizeMeasure is Kayenta's effectSize.measure.
type EffectSizeMeasure string

const (
	// MeanRatio is canary mean / baseline mean (default, the meaning of "").
	// Its neutral value, and the default allowed increase and decrease, is 1.
	MeanRatio EffectSizeMeasure = "meanRatio"
	// CLES is the common-language effect size: the probability that a
	// canary sample exceeds a baseline sample (ties count one half). Its
	// neutral value, and the default allowed increase and decrease, is 0.5.
	CLES EffectSizeMeasure = "cles"
)

// Defaults, from Kayenta's NetflixACAJudge and canary-config examples.
const (
	DefaultConfidence    = 0.98 // NetflixACAJudge: confLevel = 0.98
	DefaultTolerance     = 0.25 // NetflixACAJudge: tolerance = 0.25
	DefaultOutlierFactor = 3.0  // canary.outliers.outlierFactor default
	DefaultPassScore     = 95.0 // Kayenta json-formats.md scoreThresholds.pass
	DefaultMarginalScore = 75.0 // Kayenta json-formats.md scoreThresholds.marginal
	// NodataThreshold is Kayenta's WeightedSumScorer.NODATA_THRESHOLD: when
	// this percentage or more of the scored metrics are Nodata the canary
	// fails with score 0.
	NodataThreshold = 50.0
	// DefaultGroup is the group of a metric whose Group is "".
	DefaultGroup = "default"
)

// Metric configures the analysis of one metric.
type Metric struct {
	Name      string
	Group     string    // "" = DefaultGroup
	Direction Direction // "" = Either
	// Critical: if this metric is not Pass (High, Low, Nodata or
	// NodataFailMetric) the canary fails with score 0.
	Critical     bool
	NodataPolicy NodataPolicy // "" = NodataIgnore
	// Tolerance is Kayenta's MannWhitneyClassifier tolerance: a metric is
	// High only if the lower end of the confidence interval of the shift
	// exceeds Tolerance × |Hodges-Lehmann shift| (Low: the upper end is
	// below -Tolerance × |shift|). 0 = DefaultTolerance (0.25).
	Tolerance float64
	// OutlierRemoval drops samples outside Kayenta's IQR fences
	// (outliers.strategy = remove), from each series separately.
	OutlierRemoval bool

	// Additions beyond the brief's API, all following Kayenta.

	OutlierFactor float64     // IQR factor; 0 = DefaultOutlierFactor (3.0)
	NaNStrategy   NaNStrategy // "" = NaNRemove
	// EffectSizeMeasure and the allowed effect sizes are Kayenta's
	// effectSize.{measure,allowedIncrease,allowedDecrease}: a significant
	// change is High only if the effect size is >= AllowedIncrease and Low
	// only if it is <= AllowedDecrease; otherwise the metric passes. 0 means
	// the measure's neutral value (1 for meanRatio, 0.5 for cles), which
	// adds no condition beyond the direction of the change.
	EffectSizeMeasure EffectSizeMeasure
	AllowedIncrease   float64
	AllowedDecrease   float64
	// Muted metrics are classified and reported but left out of the score,
	// of the critical check and of the Nodata threshold (Kayenta's muted).
	Muted bool
}

// Config is a canary judge configuration.
type Config struct {
	Metrics []Metric
	// GroupWeights are percentages, as Kayenta's classifier.groupWeights,
	// by group name ("" and DefaultGroup both name the default group).
	// Empty: equal weights. If some groups have no weight they share what
	// the weighted groups leave of 100 equally (Kayenta's rule; the listed
	// weights must then not exceed 100). If every group has a weight the
	// weights are taken relative to their sum (for weights that add up to
	// 100, which Kayenta expects, that is Kayenta's rule).
	GroupWeights map[string]float64
	// Confidence level of the shift's confidence interval; 0 = 0.98
	// (alpha 0.02, two-sided).
	Confidence float64
	// Verdict thresholds on the 0..100 score: Score >= PassScore is PASS,
	// Score >= MarginalScore is MARGINAL, lower is FAIL. 0 = 95 and 75.
	PassScore, MarginalScore float64
}

// Series is the data of one metric. NaN and ±Inf are allowed: they are
// removed (or replaced by 0, per the metric's NaNStrategy).
type Series struct {
	Baseline, Canary []float64
}

// Classification of one metric, Kayenta's metric classification labels.
type Classification string

const (
	Pass   Classification = "Pass"
	High   Classification = "High"
	Low    Classification = "Low"
	Nodata Classification = "Nodata"
	// NodataFailMetric is a metric without data whose NodataPolicy is
	// NodataFail (Kayenta's mustHaveData): it counts as a failure.
	NodataFailMetric Classification = "NodataFailMetric"
)

// MetricResult is the judgement of one metric. Every float field is finite
// (so a Result marshals to JSON): a value that is undefined, such as the
// ratio when a mean is 0, is reported as 0 and explained in Reason.
type MetricResult struct {
	Name, Group    string
	Classification Classification
	Reason         string
	Critical       bool // the metric is configured critical
	// CriticalFailure: the metric is critical, not muted and not Pass, so
	// it failed the canary.
	CriticalFailure bool
	Muted           bool
	BaselineMean    float64
	CanaryMean      float64
	// Ratio is canary mean / baseline mean (Kayenta's "deviation",
	// reported as resultMetadata.ratio); 0 if a mean is 0.
	Ratio float64
	// EffectSize is the configured measure's value (equal to Ratio for
	// meanRatio); 0 when undefined.
	EffectSize        float64
	EffectSizeMeasure EffectSizeMeasure
	// PValue is the two-sided Mann-Whitney U test p-value (1 when the
	// samples were not compared).
	PValue float64
	// LowerCI and UpperCI bound Shift, the Hodges-Lehmann estimate of
	// canary - baseline, at the Confidence level.
	LowerCI, UpperCI, Shift float64
	// BaselineN and CanaryN count the samples compared (after NaN and
	// outlier handling); BaselineDropped and CanaryDropped those removed.
	BaselineN, CanaryN             int
	BaselineDropped, CanaryDropped int
	Tolerance                      float64
	Confidence                     float64
}

// Verdict of a canary run.
type Verdict string

const (
	VerdictPass     Verdict = "PASS"
	VerdictMarginal Verdict = "MARGINAL"
	VerdictFail     Verdict = "FAIL"
)

// Result of a canary judgement.
type Result struct {
	Score   float64 // 0..100, rounded to two decimals as Kayenta does
	Verdict Verdict
	Reason  string
	Metrics []MetricResult // in Config.Metrics order
	// GroupScores: per group, the percentage of its scored metrics that
	// passed (Nodata and muted metrics are not scored). A group with no
	// scored metric has score 100 here, the value Kayenta's summary uses.
	GroupScores map[string]float64
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("judge: invalid config")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Validate reports whether c can be judged.
func (c Config) Validate() error {
	if len(c.Metrics) == 0 {
		return invalid("no metrics")
	}
	seen := make(map[string]bool, len(c.Metrics))
	groups := map[string]bool{}
	unmuted := 0
	for i, m := range c.Metrics {
		if strings.TrimSpace(m.Name) == "" {
			return invalid("metric %d has no name", i)
		}
		if seen[m.Name] {
			return invalid("metric %q appears twice", m.Name)
		}
		seen[m.Name] = true
		switch m.Direction {
		case "", Increase, Decrease, Either:
		default:
			return invalid("metric %q: direction %q is not increase, decrease or either", m.Name, m.Direction)
		}
		switch m.NodataPolicy {
		case "", NodataFail, NodataIgnore:
		default:
			return invalid("metric %q: nodata policy %q is not fail or ignore", m.Name, m.NodataPolicy)
		}
		switch m.NaNStrategy {
		case "", NaNRemove, NaNReplace:
		default:
			return invalid("metric %q: NaN strategy %q is not remove or replace", m.Name, m.NaNStrategy)
		}
		switch m.EffectSizeMeasure {
		case "", MeanRatio, CLES:
		default:
			return invalid("metric %q: effect size measure %q is not meanRatio or cles", m.Name, m.EffectSizeMeasure)
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"tolerance", m.Tolerance}, {"outlier factor", m.OutlierFactor}, {"allowed increase", m.AllowedIncrease}, {"allowed decrease", m.AllowedDecrease}} {
			if !finite(f.v) || f.v < 0 {
				return invalid("metric %q: %s %v must be finite and >= 0", m.Name, f.name, f.v)
			}
		}
		if m.EffectSizeMeasure == CLES && (m.AllowedIncrease > 1 || m.AllowedDecrease > 1) {
			return invalid("metric %q: cles effect sizes lie in 0..1", m.Name)
		}
		if !m.Muted {
			unmuted++
			groups[groupOf(m)] = true
		}
	}
	if unmuted == 0 {
		return invalid("every metric is muted: nothing to score")
	}
	if c.Confidence != 0 && (!finite(c.Confidence) || c.Confidence <= 0 || c.Confidence >= 1) {
		return invalid("confidence %v must lie strictly between 0 and 1", c.Confidence)
	}
	pass, marginal := c.thresholds()
	for _, s := range []float64{c.PassScore, c.MarginalScore} {
		if !finite(s) || s < 0 || s > 100 {
			return invalid("score thresholds must lie in 0..100, got %v", s)
		}
	}
	if marginal > pass {
		return invalid("marginal score %v is above pass score %v", marginal, pass)
	}
	sum, weighted := 0.0, 0
	if _, both := c.GroupWeights[""]; both {
		if _, ok := c.GroupWeights[DefaultGroup]; ok {
			return invalid("group weights name both %q and %q, which are the same group", "", DefaultGroup)
		}
	}
	weights := c.weights()
	names := make([]string, 0, len(weights))
	for g := range weights {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		w := weights[g]
		if !finite(w) || w < 0 {
			return invalid("group %q: weight %v must be finite and >= 0", g, w)
		}
		if !groups[g] {
			return invalid("group %q has a weight but no unmuted metric", g)
		}
		sum += w
		weighted++
	}
	if weighted > 0 && weighted == len(groups) {
		if sum <= 0 {
			return invalid("group weights add up to 0")
		}
	} else if sum > 100+1e-9 {
		return invalid("group weights add up to %v, above 100, while some groups have no weight", sum)
	}
	return nil
}

// weights are the GroupWeights with the key "" read as DefaultGroup.
func (c Config) weights() map[string]float64 {
	if _, ok := c.GroupWeights[""]; !ok {
		return c.GroupWeights
	}
	out := make(map[string]float64, len(c.GroupWeights))
	for g, w := range c.GroupWeights {
		if g == "" {
			g = DefaultGroup
		}
		out[g] = w
	}
	return out
}

func groupOf(m Metric) string {
	if m.Group == "" {
		return DefaultGroup
	}
	return m.Group
}

func (c Config) confidence() float64 {
	if c.Confidence == 0 {
		return DefaultConfidence
	}
	return c.Confidence
}

func (c Config) thresholds() (pass, marginal float64) {
	pass, marginal = c.PassScore, c.MarginalScore
	if pass == 0 {
		pass = DefaultPassScore
	}
	if marginal == 0 {
		marginal = DefaultMarginalScore
	}
	return pass, marginal
}

// Judge classifies every metric of c against its data and scores the
// canary. It returns an error only when c is invalid; a metric absent from
// data, or with no usable sample on either side, is Nodata (or
// NodataFailMetric). Series in data that no metric names are ignored.
func Judge(c Config, data map[string]Series) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	conf := c.confidence()
	results := make([]MetricResult, len(c.Metrics))
	for i, m := range c.Metrics {
		s, ok := data[m.Name]
		results[i] = classifyMetric(m, s, ok, conf)
	}
	return score(c, results), nil
}

// score is Kayenta's WeightedSumScorer and ThresholdScoreClassifier.
func score(c Config, results []MetricResult) Result {
	type tally struct{ pass, total int }
	groups := map[string]*tally{}
	var scored []*MetricResult
	for i := range results {
		r := &results[i]
		if r.Muted {
			continue
		}
		scored = append(scored, r)
		t := groups[r.Group]
		if t == nil {
			t = &tally{}
			groups[r.Group] = t
		}
		switch r.Classification {
		case Pass:
			t.pass++
			t.total++
		case High, Low, NodataFailMetric:
			t.total++
		}
	}

	groupScores := make(map[string]float64, len(groups))
	for g, t := range groups {
		if t.total == 0 {
			groupScores[g] = 100 // Kayenta: a group with no data counts 100
		} else {
			groupScores[g] = float64(t.pass) / float64(t.total) * 100
		}
	}

	res := Result{Metrics: results, GroupScores: groupScores}
	pass, marginal := c.thresholds()

	var critical []string
	nodata, compared := 0, 0
	for _, r := range scored {
		if r.CriticalFailure {
			critical = append(critical, r.Reason)
		}
		switch r.Classification {
		case Nodata:
			nodata++
		case Pass, High, Low:
			compared++
		}
	}
	switch {
	case len(critical) > 0:
		res.Score, res.Verdict = 0, VerdictFail
		res.Reason = "Canary Failed: critical metric not Pass: " + strings.Join(critical, "; ")
		return res
	case float64(nodata)/float64(len(scored))*100 >= NodataThreshold:
		res.Score, res.Verdict = 0, VerdictFail
		res.Reason = fmt.Sprintf("Canary Failed: %d of %d metrics (%.0f%% or more) returned NODATA (%s)", nodata, len(scored), NodataThreshold, tallyText(scored))
		return res
	case compared == 0:
		// Not in Kayenta, where Nodata metrics below the threshold plus
		// NodataFailMetric ones can still reach a pass score (a group
		// whose metrics are all Nodata counts 100).
		res.Score, res.Verdict = 0, VerdictFail
		res.Reason = fmt.Sprintf("Canary Failed: no metric has data (%s)", tallyText(scored))
		return res
	}

	weights := groupWeights(c.weights(), groups)
	total := 0.0
	names := sortedKeys(groupScores)
	for _, g := range names {
		total += groupScores[g] * weights[g] / 100
	}
	total = math.Round(total*100) / 100
	total = math.Max(0, math.Min(100, total))
	res.Score = total

	summary := tallyText(scored)
	switch {
	case total >= pass:
		res.Verdict = VerdictPass
		res.Reason = fmt.Sprintf("score %.2f >= pass %.2f (%s)", total, pass, summary)
	case total >= marginal:
		res.Verdict = VerdictMarginal
		res.Reason = fmt.Sprintf("score %.2f < pass %.2f but >= marginal %.2f (%s)", total, pass, marginal, summary)
	default:
		res.Verdict = VerdictFail
		res.Reason = fmt.Sprintf("score %.2f < marginal %.2f (%s)", total, marginal, summary)
	}
	return res
}

// groupWeights returns the percentage weight of every scored group.
func groupWeights[T any](configured map[string]float64, groups map[string]T) map[string]float64 {
	weights := make(map[string]float64, len(groups))
	sum, unweighted := 0.0, 0
	for g := range groups {
		if w, ok := configured[g]; ok {
			sum += w
		} else {
			unweighted++
		}
	}
	for g := range groups {
		w, ok := configured[g]
		switch {
		case unweighted == 0:
			weights[g] = w / sum * 100
		case ok:
			weights[g] = w
		default:
			weights[g] = math.Max(0, 100-sum) / float64(unweighted)
		}
	}
	return weights
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tallyText counts the scored metrics by classification, for a Reason.
func tallyText(scored []*MetricResult) string {
	counts := map[Classification]int{}
	for _, r := range scored {
		counts[r.Classification]++
	}
	parts := []string{}
	for _, c := range []Classification{Pass, High, Low, NodataFailMetric, Nodata} {
		if counts[c] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[c], c))
		}
	}
	return fmt.Sprintf("%d scored metrics: %s", len(scored), strings.Join(parts, ", "))
}
