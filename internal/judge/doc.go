// Package judge is a canary judge: it compares a canary's metrics with a
// baseline's and says PASS, MARGINAL or FAIL. It follows Netflix Kayenta's
// NetflixACAJudge (kayenta-judge: NetflixACAJudge.scala,
// MannWhitneyClassifier.scala, WeightedSumScorer.scala,
// ThresholdScoreClassifier.scala, IQRDetector.scala, EffectSizes.scala).
// docs/canary-judge.md has the full account, including where this package
// differs from Kayenta.
//
// # Per metric
//
//  1. NaN (and ±Inf) samples are removed, or replaced by 0 with
//     NaNStrategy "replace". With OutlierRemoval, samples outside
//     [min(P1, Q1 - f·IQR), max(P99, Q3 + f·IQR)] (percentiles by the R-7
//     rule, f = 3 by default) are dropped, each series on its own: Kayenta's
//     IQRDetector with reduceSensitivity.
//  2. No sample left on a side: Nodata, or NodataFailMetric when the policy
//     is "fail" and the metric is not critical (Kayenta's mustHaveData).
//  3. Identical data (same multiset), or one single value on both sides:
//     Pass.
//  4. Otherwise the shift canary − baseline is estimated with the
//     Hodges-Lehmann estimator and its confidence interval at the configured
//     level (0.98 by default), and the metric is
//     High if  lowerCI >  tolerance·|shift| and the direction is increase or
//     either and the effect size >= the allowed increase;
//     Low  if  upperCI < −tolerance·|shift| and the direction is decrease or
//     either and the effect size <= the allowed decrease;
//     Pass otherwise. Tolerance is 0.25 by default; the effect size is the
//     mean ratio (default) or the common-language effect size, and a NaN
//     effect size (a mean of 0) does not block. This is Kayenta's rule. The
//     two-sided Mann-Whitney U test p-value (go-moremath's
//     stats.MannWhitneyUTest: exact for small samples, otherwise the normal
//     approximation with tie and continuity corrections) is reported in
//     MetricResult.PValue and in the Reason; as in Kayenta the decision is
//     made on the confidence interval, which is the same test inverted.
//
// # Hodges-Lehmann estimator and interval (written for this package)
//
// With canary samples x_1..x_m and baseline samples y_1..y_n, let
// d_(1) <= ... <= d_(mn) be the sorted pairwise differences x_i − y_j. The
// estimate is their median. The interval is Moses' distribution-free one,
// [d_(kl), d_(ku)] with
//
//	σ  = sqrt( m·n/12 · ( (m+n+1) − Σ(t³−t) / ((m+n)(m+n−1)) ) )
//	kl = ceil( m·n/2 − z·σ − 1/2 ),  ku = ceil( m·n/2 + z·σ + 1/2 )
//
// clamped to 1..mn, where z is the standard normal quantile 1 − α/2 and the
// t are the sizes of the runs of equal values within each sample. These are
// exactly the points where the continuity-corrected, tie-corrected
// standardised U statistic crosses ±z, which is where R's wilcox.test and
// Kayenta's MannWhitney.scala put their bounds by Brent root-finding; here
// they are found exactly. The m·n differences are never all stored: the
// k-th one is found by bisection over the ordered bit patterns of float64
// (at most 64 steps, whatever the scale), counting differences <= t with a
// two-pointer sweep of the sorted samples, until at most max((m+n)/4, 64)
// remain in the bracket, which are gathered and sorted: memory O(m+n), time
// O(m+n) per step, 13 to 23 steps in practice.
// Kayenta adds Gaussian noise when both samples are constant; this package
// does not need to: constant samples a and b give every difference a − b,
// so shift and interval are exactly a − b and the outcome is deterministic.
//
// # Score
//
// Kayenta's WeightedSumScorer: each group's score is the percentage of its
// scored metrics (Pass, High, Low, NodataFailMetric; not Nodata, not muted)
// that are Pass, 100 for a group with none; the summary is the weighted sum
// of group scores (weights in percent; groups without a weight share the
// rest equally; all groups weighted: weights relative to their sum),
// rounded to two decimals. Then: any critical metric that is not Pass makes
// the score 0 and the verdict FAIL; if 50% or more of the scored metrics are
// Nodata, or no metric has data at all (this last rule is not Kayenta's),
// the score is 0 and the verdict FAIL, so a run whose every query failed can
// never pass; otherwise score >= PassScore (95) is PASS, >= MarginalScore
// (75) is MARGINAL, below is FAIL.
package judge
