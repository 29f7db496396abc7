package judge

import (
	"math"
	"sort"

	"github.com/aclements/go-moremath/stats"
)

// This file holds the two-sample Hodges-Lehmann location-shift estimator
// and its distribution-free (Moses) confidence interval. They were written
// for this package; go-moremath has the Mann-Whitney U test but neither of
// these. See the package documentation for the formulas.

// shiftEstimate is the Hodges-Lehmann estimate of the location shift
// canary - baseline, with its confidence interval.
type shiftEstimate struct {
	estimate, lower, upper float64
	// clamped: the samples are too small for the confidence level, and an
	// end of the interval was clamped to the smallest or largest difference
	// (R's "requested conf.level not achievable"; Kayenta clamps likewise).
	clamped bool
}

// pairwiseDiffs answers order-statistic questions about the m*n differences
// x[i]-y[j] of two sorted samples without materialising them: memory stays
// O(m+n) and each question costs O((m+n)*64).
type pairwiseDiffs struct {
	x, y []float64 // sorted ascending, finite
}

// countLE is #{(i,j) : x[i]-y[j] <= t}.
//
// For a fixed i the differences x[i]-y[j] fall as j grows, so the ones <= t
// are a suffix j >= p_i; p_i only grows with i because x is sorted. Float
// subtraction is monotone in each argument, so this also holds for the
// rounded differences the rest of the code compares.
func (d pairwiseDiffs) countLE(t float64) int {
	n := len(d.y)
	count, j := 0, 0
	for _, xi := range d.x {
		for j < n && xi-d.y[j] > t {
			j++
		}
		count += n - j
	}
	return count
}

// maxLE is the largest difference <= t (the caller guarantees one exists).
func (d pairwiseDiffs) maxLE(t float64) float64 {
	n := len(d.y)
	best := math.Inf(-1)
	j := 0
	for _, xi := range d.x {
		for j < n && xi-d.y[j] > t {
			j++
		}
		if j < n {
			if v := xi - d.y[j]; v > best {
				best = v
			}
		}
	}
	return best
}

// orderedKey maps a non-NaN float64 to a uint64 with the same order, so that
// bisection over keys visits every representable value between two floats
// (including the infinities an overflowing difference can produce) and ends
// after at most 64 steps.
func orderedKey(f float64) uint64 {
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

func fromOrderedKey(k uint64) float64 {
	if k>>63 == 1 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}

// kth is the k-th smallest difference, 1 <= k <= m*n.
func (d pairwiseDiffs) kth(k int) float64 {
	v, _, _ := d.kthAndNext(k)
	return v
}

// kthAndNext is the k-th smallest difference and, when it comes for free
// (ok), the (k+1)-th.
//
// It bisects the range of differences, over the ordered bit patterns of
// float64 so that it ends whatever the scale, until few differences lie in
// the bracket; those are gathered (a contiguous run of
// each row) and the answer picked from them sorted.
func (d pairwiseDiffs) kthAndNext(k int) (kth, next float64, ok bool) {
	lo := d.x[0] - d.y[len(d.y)-1]
	hi := d.x[len(d.x)-1] - d.y[0]
	cLo := d.countLE(lo)
	if cLo >= k {
		return lo, 0, false
	}
	cHi := len(d.x) * len(d.y)
	// A counting sweep costs about m+n steps and sorting L values about
	// 12·L, so stop bisecting once fewer than (m+n)/4 values are left.
	limit := max((len(d.x)+len(d.y))/4, 64)
	// Invariant: cLo = countLE(lo) < k <= cHi = countLE(hi).
	klo, khi := orderedKey(lo), orderedKey(hi)
	for khi-klo > 1 {
		if cHi-cLo <= limit {
			vals := d.collect(fromOrderedKey(klo), fromOrderedKey(khi), cHi-cLo)
			rank := k - cLo
			if rank < len(vals) {
				return vals[rank-1], vals[rank], true
			}
			return vals[rank-1], 0, false
		}
		mid := klo + (khi-klo)/2
		if c := d.countLE(fromOrderedKey(mid)); c >= k {
			khi, cHi = mid, c
		} else {
			klo, cLo = mid, c
		}
	}
	return d.maxLE(fromOrderedKey(khi)), 0, false
}

// collect returns, sorted, the size differences in (lo, hi].
func (d pairwiseDiffs) collect(lo, hi float64, size int) []float64 {
	n := len(d.y)
	vals := make([]float64, 0, size)
	jHi, jLo := 0, 0 // first j with x[i]-y[j] <= hi, and <= lo
	for _, xi := range d.x {
		for jHi < n && xi-d.y[jHi] > hi {
			jHi++
		}
		for jLo < n && xi-d.y[jLo] > lo {
			jLo++
		}
		for j := jHi; j < jLo; j++ {
			vals = append(vals, xi-d.y[j])
		}
	}
	sort.Float64s(vals)
	return vals
}

// tieTerm is sum(t^3 - t) over the runs of equal values in a sorted sample.
func tieTerm(sorted []float64) float64 {
	sum := 0.0
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j] == sorted[i] {
			j++
		}
		t := float64(j - i)
		sum += t*t*t - t
		i = j
	}
	return sum
}

// hodgesLehmann returns the Hodges-Lehmann estimate of the shift
// canary - baseline and its two-sided confidence interval at the given
// confidence level. Both samples must be non-empty and finite.
func hodgesLehmann(canary, baseline []float64, confidence float64) shiftEstimate {
	x, y := sortedCopy(canary), sortedCopy(baseline)
	d := pairwiseDiffs{x: x, y: y}
	m, n := len(x), len(y)
	total := m * n

	var est float64
	if total%2 == 1 {
		est = d.kth((total + 1) / 2)
	} else {
		a, b, ok := d.kthAndNext(total / 2)
		if !ok {
			b = d.kth(total/2 + 1)
		}
		est = a/2 + b/2
	}

	// Normal approximation of the U statistic, with the tie correction
	// (ties within each sample: between the samples the shifted values
	// tie only at the jump points themselves) and the continuity
	// correction, as R's wilcox.test(conf.int=TRUE, exact=FALSE) and
	// Kayenta's MannWhitney.scala do.
	mf, nf := float64(m), float64(n)
	N := mf + nf
	ties := tieTerm(x) + tieTerm(y)
	variance := mf * nf / 12 * ((N + 1) - ties/(N*(N-1)))
	sigma := math.Sqrt(math.Max(variance, 0))
	z := stats.StdNormal.InvCDF(1 - (1-confidence)/2)
	half := float64(total) / 2
	rawLow, rawHigh := math.Ceil(half-z*sigma-0.5), math.Ceil(half+z*sigma+0.5)
	lowK, highK := clampK(rawLow, total), clampK(rawHigh, total)
	return shiftEstimate{estimate: est, lower: d.kth(lowK), upper: d.kth(highK),
		clamped: rawLow < 1 || rawHigh > float64(total)}
}

func clampK(k float64, total int) int {
	if math.IsNaN(k) || k < 1 {
		return 1
	}
	if k > float64(total) {
		return total
	}
	return int(k)
}

// wilcoxonZ is the standardised Mann-Whitney statistic for the hypothesis
// "canary - baseline is shifted by mu": U counts canary[i]-mu > baseline[j]
// plus one half per tie, with the tie and continuity corrections, as
// Kayenta's MannWhitney.wilcoxonDiff (with quantile 0). It is 0 when every
// shifted sample ties.
func wilcoxonZ(canary, baseline []float64, mu float64) float64 {
	x := make([]float64, len(canary))
	for i, v := range canary {
		x[i] = v - mu
	}
	y := append([]float64(nil), baseline...)
	sort.Float64s(x)
	sort.Float64s(y)
	m, n := float64(len(x)), float64(len(y))
	u := uStatistic(x, y)
	merged := append(append(make([]float64, 0, len(x)+len(y)), x...), y...)
	sort.Float64s(merged)
	N := m + n
	variance := m * n / 12 * ((N + 1) - tieTerm(merged)/(N*(N-1)))
	if !(variance > 0) {
		return 0
	}
	dz := u - m*n/2
	switch {
	case dz > 0:
		dz -= 0.5
	case dz < 0:
		dz += 0.5
	}
	return dz / math.Sqrt(variance)
}
