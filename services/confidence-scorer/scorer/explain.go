package scorer

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/decision-fabric/fabric/internal/world"
)

// explain writes the explanation: the confidence, the factor that moved it most (by
// effect) with its numbers, the other factors, the risk and its largest
// component, and the cost. Every number in it comes from the response. The factor
// that moved the score most is the one with the largest |effect| (see combine).
func explain(r *result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Confidence is %.2f.", r.confidence)
	if r.top >= 0 {
		f := r.factors[r.top]
		fmt.Fprintf(&b, " The largest factor is %s (%+.2f): %s.", factorLabel(f.name), f.effect, factorDetail(r, r.top))
	} else {
		b.WriteString(" No factor moved it from the neutral 0.50.")
	}
	for i := range r.factors {
		if i != r.top {
			b.WriteString(" " + sentence(factorDetail(r, i)))
		}
	}
	fmt.Fprintf(&b, " Risk is %s (%.2f), mostly from %s.", r.risk.GetLevel(), r.risk.GetScore(), riskLabel(r))
	b.WriteString(" " + costSentence(r))
	return b.String()
}

func factorLabel(name string) string {
	switch name {
	case FactorHistory:
		return "the history"
	case FactorVotes:
		return "the regional vote"
	case FactorMetrics:
		return "the live metrics"
	case FactorModel:
		return "the model"
	}
	return name
}

// factorDetail is the clause describing factor i, lower-case and without a full stop.
func factorDetail(r *result, i int) string {
	in := r.in
	switch r.factors[i].name {
	case FactorHistory:
		h := r.hist
		post := fmt.Sprintf("posterior %.2f, 90%% interval %.2f–%.2f", h.GetPosteriorMean(), h.GetIntervalLow(), h.GetIntervalHigh())
		n := h.GetSuccesses() + h.GetFailures()
		switch h.GetScope() {
		case ScopeActionTarget:
			return fmt.Sprintf("%d of %d similar %s changes for %s succeeded (%s)", h.GetSuccesses(), n, in.Action, in.Target, post)
		case ScopeAction:
			return fmt.Sprintf("no %s change for %s has finished yet, and %d of %d %s changes for other targets succeeded (%s; counted at half weight)",
				in.Action, in.Target, h.GetSuccesses(), n, in.Action, post)
		}
		return fmt.Sprintf("no similar %s change has finished yet, so the history is the Beta(%s,%s) prior alone (%s)",
			in.Action, num(PriorAlpha), num(PriorBeta), strings.Replace(post, "posterior ", "mean ", 1))
	case FactorVotes:
		v := in.Votes
		switch {
		case !v.Found:
			return "no negotiation round has finished yet, so vote agreement counts as neutral (0.50)"
		case v.Total <= 0:
			return "the negotiation recorded no votes, so vote agreement counts as neutral (0.50)"
		}
		return fmt.Sprintf("regions agreed %s of %s (accepting weight %.2f)", num(v.Accepted), num(v.Total), r.factors[i].value)
	case FactorMetrics:
		m := in.Metrics
		switch {
		case !m.Available:
			return fmt.Sprintf("live metrics (%s) were unavailable, so they did not count", m.Source)
		case m.Samples <= 0:
			return fmt.Sprintf("live metrics (%s) show no traffic, so they did not count", m.Source)
		}
		return fmt.Sprintf("live error rate is %s and CPU %.0f%% over %s requests (%s), which reads as %.2f for this change",
			percent(m.ErrorRate), 100*m.CPU, thousands(strconv.Itoa(m.Samples)), m.Source, r.metricsP)
	case FactorModel:
		m := in.Model
		if !m.Available {
			return fmt.Sprintf("the model (%s) was unavailable, so it did not count", m.Provider)
		}
		return fmt.Sprintf("the model %s puts success at %.2f", m.Model, m.Probability)
	}
	return r.factors[i].name
}

func riskLabel(r *result) string {
	switch r.riskTop {
	case RiskImpact:
		impact := r.in.Impact
		if impact != LevelLow && impact != LevelHigh {
			impact = LevelMedium
		}
		return "the " + impact + " impact"
	case RiskBlastRadius:
		return fmt.Sprintf("the blast radius (%s, %d of %d replicas changing)", plural(len(r.in.Regions), "region"), r.absDelta, r.replicas)
	case RiskErrorRate:
		if !r.in.Metrics.Available || r.in.Metrics.Samples <= 0 {
			return "the unknown error rate"
		}
		return "the live error rate of " + percent(r.in.Metrics.ErrorRate)
	}
	return "the uncertainty of the estimate"
}

func costSentence(r *result) string {
	amount := r.cost.GetAmount()
	where := plural(len(r.in.Regions), "region")
	switch {
	case r.absDelta == 0:
		return "The change leaves replica counts as they are, so no cost change is estimated."
	case amount < 0:
		return fmt.Sprintf("Estimated saving %s/month across %s.", money(-amount), where)
	}
	return fmt.Sprintf("Estimated cost +%s/month across %s.", money(amount), where)
}

// costItemText describes one line of the breakdown.
func costItemText(reg RegionInput) string {
	return fmt.Sprintf("%s: %+d replicas × %s/replica-hour × %d h", reg.Region, reg.ReplicasDelta,
		price(reg.CostPerReplicaHour), world.HoursPerMonth)
}

// price formats a unit price with at least two decimals and as many more as it has:
// "$0.10", "$0.125".
func price(x float64) string {
	s := strconv.FormatFloat(x, 'f', -1, 64)
	dot := strings.IndexByte(s, '.')
	switch {
	case dot < 0:
		s += ".00"
	case len(s)-dot == 2:
		s += "0"
	}
	return "$" + s
}

// money formats a non-negative amount: whole dollars with thousands separators from
// $100, cents below.
func money(x float64) string {
	if x < 100 {
		return fmt.Sprintf("$%.2f", x)
	}
	return "$" + thousands(strconv.FormatFloat(math.Round(x), 'f', 0, 64))
}

// thousands groups the digits of a non-negative integer: "1234567" -> "1,234,567".
func thousands(digits string) string {
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// percent formats a fraction: one decimal below 10%, none above.
func percent(x float64) string {
	if x < 0.1 {
		return fmt.Sprintf("%.1f%%", 100*x)
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}

// num formats a count-like number: "4" when integral, "0.67" otherwise.
func num(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1e15 {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func sentence(clause string) string {
	if clause == "" {
		return ""
	}
	return strings.ToUpper(clause[:1]) + clause[1:] + "."
}
