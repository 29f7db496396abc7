package judge

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/aclements/go-moremath/stats"
)

// metricParams are a Metric's settings with the defaults filled in.
type metricParams struct {
	direction       Direction
	tolerance       float64
	outliers        bool
	outlierFactor   float64
	nan             NaNStrategy
	measure         EffectSizeMeasure
	allowedIncrease float64
	allowedDecrease float64
}

func paramsOf(m Metric) metricParams {
	p := metricParams{
		direction:       m.Direction,
		tolerance:       m.Tolerance,
		outliers:        m.OutlierRemoval,
		outlierFactor:   m.OutlierFactor,
		nan:             m.NaNStrategy,
		measure:         m.EffectSizeMeasure,
		allowedIncrease: m.AllowedIncrease,
		allowedDecrease: m.AllowedDecrease,
	}
	if p.direction == "" {
		p.direction = Either
	}
	if p.tolerance == 0 {
		p.tolerance = DefaultTolerance
	}
	if p.outlierFactor == 0 {
		p.outlierFactor = DefaultOutlierFactor
	}
	if p.nan == "" {
		p.nan = NaNRemove
	}
	if p.measure == "" {
		p.measure = MeanRatio
	}
	neutral := 1.0
	if p.measure == CLES {
		neutral = 0.5
	}
	if p.allowedIncrease == 0 {
		p.allowedIncrease = neutral
	}
	if p.allowedDecrease == 0 {
		p.allowedDecrease = neutral
	}
	return p
}

// clean applies the NaN strategy (NaN and ±Inf alike) and then, if asked,
// the IQR outlier removal, as Kayenta's NetflixACAJudge.transformMetric.
func clean(xs []float64, p metricParams) ([]float64, int) {
	out := make([]float64, 0, len(xs))
	for _, v := range xs {
		if finite(v) {
			out = append(out, v)
		} else if p.nan == NaNReplace {
			out = append(out, 0)
		}
	}
	dropped := len(xs) - len(out)
	if p.outliers {
		var n int
		out, n = removeOutliers(out, p.outlierFactor)
		dropped += n
	}
	return out, dropped
}

// num formats a figure for a Reason: four significant digits.
func num(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

// safe makes a reported figure finite: NaN becomes 0, ±Inf the largest
// finite value of the same sign.
func safe(f float64) float64 {
	switch {
	case math.IsNaN(f):
		return 0
	case math.IsInf(f, 1):
		return math.MaxFloat64
	case math.IsInf(f, -1):
		return -math.MaxFloat64
	}
	return f
}

// classifyMetric is Kayenta's MannWhitneyClassifier.classify (with the
// transformations of NetflixACAJudge.classifyMetric) for one metric.
func classifyMetric(m Metric, s Series, present bool, confidence float64) MetricResult {
	r := compareMetric(m, s, present, confidence)
	r.CriticalFailure = m.Critical && !m.Muted && r.Classification != Pass
	if r.CriticalFailure {
		r.Reason += " (critical)"
	}
	return r
}

// compareMetric classifies one metric; classifyMetric adds the critical flag.
func compareMetric(m Metric, s Series, present bool, confidence float64) MetricResult {
	p := paramsOf(m)
	canary, canaryDropped := clean(s.Canary, p)
	baseline, baselineDropped := clean(s.Baseline, p)

	r := MetricResult{
		Name:              m.Name,
		Group:             groupOf(m),
		Critical:          m.Critical,
		Muted:             m.Muted,
		BaselineMean:      mean(baseline),
		CanaryMean:        mean(canary),
		EffectSizeMeasure: p.measure,
		PValue:            1,
		BaselineN:         len(baseline),
		CanaryN:           len(canary),
		BaselineDropped:   baselineDropped,
		CanaryDropped:     canaryDropped,
		Tolerance:         p.tolerance,
		Confidence:        confidence,
	}

	// No data on either side.
	if len(canary) == 0 || len(baseline) == 0 {
		r.Classification = Nodata
		if m.NodataPolicy == NodataFail && !m.Critical {
			r.Classification = NodataFailMetric
		}
		r.Reason = fmt.Sprintf("%s: no data (canary %d of %d samples usable, baseline %d of %d)",
			m.Name, len(canary), len(s.Canary), len(baseline), len(s.Baseline))
		if !present {
			r.Reason = fmt.Sprintf("%s: no data (metric absent)", m.Name)
		}
		r.Reason += ": " + string(r.Classification)
		return r
	}

	sc := slices.Sorted(slices.Values(canary))
	sb := slices.Sorted(slices.Values(baseline))
	ratio := meanRatio(r.CanaryMean, r.BaselineMean)
	r.Ratio = safe(ratio)
	effect := ratio
	if p.measure == CLES {
		effect = cles(sc, sb)
	}
	r.EffectSize = safe(effect)
	ratioText := "ratio undefined: a mean is 0"
	if !math.IsNaN(ratio) {
		ratioText = "ratio " + strconv.FormatFloat(ratio, 'f', 2, 64)
	}
	head := fmt.Sprintf("%s: canary mean %s vs baseline mean %s (%s)", m.Name, num(r.CanaryMean), num(r.BaselineMean), ratioText)

	// Identical data, or a single value on both sides: Pass without a test.
	if slices.Equal(sc, sb) {
		r.Classification = Pass
		r.Reason = head + ", canary and baseline data are identical: Pass"
		return r
	}
	if sc[0] == sc[len(sc)-1] && sb[0] == sb[len(sb)-1] && sc[0] == sb[0] {
		r.Classification = Pass
		r.Reason = head + ", every sample has the same value: Pass"
		return r
	}

	r.PValue = mannWhitneyP(sc, sb)
	hl := hodgesLehmann(sc, sb, confidence)
	r.Shift, r.LowerCI, r.UpperCI = safe(hl.estimate), safe(hl.lower), safe(hl.upper)

	// Kayenta's calculateBounds: ± tolerance × |Hodges-Lehmann estimate|.
	bound := p.tolerance * math.Abs(hl.estimate)
	increaseCounts := p.direction == Increase || p.direction == Either
	decreaseCounts := p.direction == Decrease || p.direction == Either
	// The interval's ends are pairwise differences. When an end falls
	// exactly on the bound (typically shift and end both 0 because most
	// samples are 0 on both sides), the bound is outside the interval iff
	// the test of "shift = bound" rejects it, ties at the bound counted one
	// half: that is how Kayenta's root-finding lands just past such a jump.
	zc := stats.StdNormal.InvCDF(1 - (1-confidence)/2)
	higher := hl.lower > bound || hl.lower == bound && wilcoxonZ(sc, sb, bound) > zc
	lower := hl.upper < -bound || hl.upper == -bound && wilcoxonZ(sc, sb, -bound) < -zc
	// An effect size that cannot be computed does not block (Kayenta).
	bigIncrease := math.IsNaN(effect) || effect >= p.allowedIncrease
	bigDecrease := math.IsNaN(effect) || effect <= p.allowedDecrease

	alpha := 1 - confidence
	cmp := "<"
	if r.PValue >= alpha {
		cmp = ">="
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, Mann-Whitney p=%.2g %s %.3g, shift %s (%.4g%% CI %s to %s",
		head, r.PValue, cmp, alpha, num(hl.estimate), confidence*100, num(hl.lower), num(hl.upper))
	if hl.clamped {
		fmt.Fprintf(&b, ", clamped to the range of the differences: %d and %d samples are too few for %.4g%%", len(canary), len(baseline), confidence*100)
	}
	b.WriteString(")")

	switch {
	case higher && increaseCounts && bigIncrease:
		r.Classification = High
		fmt.Fprintf(&b, " above +%s (tolerance %g × |shift|): High", num(bound), p.tolerance)
	case lower && decreaseCounts && bigDecrease:
		r.Classification = Low
		fmt.Fprintf(&b, " below -%s (tolerance %g × |shift|): Low", num(bound), p.tolerance)
	case higher && !increaseCounts:
		r.Classification = Pass
		fmt.Fprintf(&b, " above +%s, but the direction is %s: Pass", num(bound), p.direction)
	case lower && !decreaseCounts:
		r.Classification = Pass
		fmt.Fprintf(&b, " below -%s, but the direction is %s: Pass", num(bound), p.direction)
	case higher:
		r.Classification = Pass
		fmt.Fprintf(&b, " above +%s, but effect size %s %s < allowed increase %s: Pass", num(bound), p.measure, num(effect), num(p.allowedIncrease))
	case lower:
		r.Classification = Pass
		fmt.Fprintf(&b, " below -%s, but effect size %s %s > allowed decrease %s: Pass", num(bound), p.measure, num(effect), num(p.allowedDecrease))
	default:
		r.Classification = Pass
		fmt.Fprintf(&b, " does not clear ±%s (tolerance %g × |shift|): Pass", num(bound), p.tolerance)
	}
	r.Reason = b.String()
	return r
}

// mannWhitneyP is the two-sided p-value of go-moremath's Mann-Whitney U
// test, 1 when the test does not apply (all samples equal).
//
// go-moremath doubles CDF(min(U1, U2)) of the distribution of U1, the first
// sample's statistic. With ties that distribution is not symmetric, so when
// U1 is the larger statistic the figure is not the doubled lower tail and
// depends on which sample is passed first (e.g. 0.56 one way, 0.48 the
// other). Passing first the sample whose U is the smaller makes it the
// doubled smaller tail, the same either way round; the result is capped at
// 1, which doubling a tail with a tied atom can exceed.
func mannWhitneyP(canary, baseline []float64) float64 {
	x, y := canary, baseline
	if 2*uStatistic(canary, baseline) > float64(len(canary))*float64(len(baseline)) {
		x, y = baseline, canary
	}
	res, err := stats.MannWhitneyUTest(x, y, stats.LocationDiffers)
	if err != nil || math.IsNaN(res.P) {
		return 1
	}
	return math.Max(0, math.Min(1, res.P))
}
