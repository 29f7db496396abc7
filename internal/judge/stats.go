package judge

import (
	"math"
	"sort"
)

// mean is the arithmetic mean of finite values, 0 for none. If the plain sum
// overflows, each value is divided by n before summing instead.
func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	n := float64(len(xs))
	sum := 0.0
	for _, v := range xs {
		sum += v
	}
	if finite(sum) {
		return sum / n
	}
	sum = 0
	for _, v := range xs {
		sum += v / n
	}
	return safe(sum) // the rounded terms can still add up past MaxFloat64
}

// percentileR7 is the p-th percentile (0 < p <= 100) of sorted data with the
// R-7 rule (linear interpolation between closest ranks), as Kayenta's
// DescriptiveStatistics.percentile (Apache Commons Math, EstimationType.R_7).
func percentileR7(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if n == 1 {
		return sorted[0]
	}
	h := (float64(n) - 1) * p / 100
	lo := math.Floor(h)
	i := int(lo)
	if i >= n-1 {
		return sorted[n-1]
	}
	frac := h - lo
	a, b := sorted[i], sorted[i+1]
	if frac == 0 || a == b {
		return a
	}
	if span := b - a; finite(span) {
		return a + frac*span
	}
	return a*(1-frac) + b*frac // b-a overflowed
}

// iqrFences are the fences of Kayenta's IQRDetector with
// reduceSensitivity = true (the setting NetflixACAJudge uses): the Tukey
// fences Q1 - f*IQR and Q3 + f*IQR, widened to at least the 1st and 99th
// percentiles.
func iqrFences(sorted []float64, factor float64) (lower, upper float64) {
	p25 := percentileR7(sorted, 25)
	p75 := percentileR7(sorted, 75)
	iqr := p75 - p25
	lower = math.Min(percentileR7(sorted, 1), p25-factor*iqr)
	upper = math.Max(percentileR7(sorted, 99), p75+factor*iqr)
	return lower, upper
}

// removeOutliers drops the values outside iqrFences, keeping the order of
// the rest. It returns the kept values and how many were dropped.
func removeOutliers(xs []float64, factor float64) ([]float64, int) {
	if len(xs) == 0 {
		return xs, 0
	}
	sorted := append([]float64(nil), xs...)
	sort.Float64s(sorted)
	lower, upper := iqrFences(sorted, factor)
	kept := make([]float64, 0, len(xs))
	for _, v := range xs {
		if v < lower || v > upper {
			continue
		}
		kept = append(kept, v)
	}
	return kept, len(xs) - len(kept)
}

// uStatistic is #{(i,j): canary[i] > baseline[j]} + 0.5 #{canary[i] == baseline[j]}.
func uStatistic(canary, baseline []float64) float64 {
	x, y := sortedCopy(canary), sortedCopy(baseline)
	u := 0.0
	less, lessEq := 0, 0 // #{y < xi}, #{y <= xi}
	for _, xi := range x {
		for less < len(y) && y[less] < xi {
			less++
		}
		if lessEq < less {
			lessEq = less
		}
		for lessEq < len(y) && y[lessEq] <= xi {
			lessEq++
		}
		u += float64(less) + 0.5*float64(lessEq-less)
	}
	return u
}

// cles is the common-language effect size (Vargha-Delaney A) of canary over
// baseline: the probability that a canary value exceeds a baseline value,
// ties counting one half. Kayenta's EffectSizes.cles computes the same
// number from rank sums.
func cles(canary, baseline []float64) float64 {
	return uStatistic(canary, baseline) / (float64(len(canary)) * float64(len(baseline)))
}

// meanRatio is Kayenta's EffectSizes.meanRatio: canary mean / baseline mean,
// NaN when either mean is 0.
func meanRatio(canaryMean, baselineMean float64) float64 {
	if canaryMean == 0 || baselineMean == 0 {
		return math.NaN()
	}
	return canaryMean / baselineMean
}

// sortedCopy returns xs if it is already sorted, else a sorted copy.
func sortedCopy(xs []float64) []float64 {
	if sort.Float64sAreSorted(xs) {
		return xs
	}
	out := append([]float64(nil), xs...)
	sort.Float64s(out)
	return out
}
