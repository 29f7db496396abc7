package scorer

import "math"

// betaCDF is the regularised incomplete beta function I_x(a, b): the CDF of Beta(a, b)
// at x. It uses the continued fraction of Numerical Recipes (§6.4) with the modified
// Lentz method, switching to the symmetry relation where the fraction converges slowly.
// Pure arithmetic: equal inputs give bit-identical results.
func betaCDF(x, a, b float64) float64 { return betaCDFWith(x, a, b, lnBeta(a, b)) }

// lnBeta is ln B(a, b).
func lnBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// betaCDFWith is betaCDF with ln B(a, b) computed by the caller (once per quantile search).
func betaCDFWith(x, a, b, lnB float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	front := math.Exp(a*math.Log(x) + b*math.Log1p(-x) - lnB)
	if x < (a+1)/(a+b+2) {
		return front * betaCF(x, a, b) / a
	}
	return 1 - front*betaCF(1-x, b, a)/b
}

// betaCF evaluates the continued fraction for I_x(a, b).
func betaCF(x, a, b float64) float64 {
	const (
		maxIter = 10000
		eps     = 1e-15
		tiny    = 1e-300
	)
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= maxIter; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// betaQuantile is the p-quantile of Beta(a, b), by bisection on betaCDF (monotone, so
// bisection always converges; 60 halvings give ~1e-18, far below the 4 decimals we report).
func betaQuantile(p, a, b float64) float64 {
	lo, hi, lnB := 0.0, 1.0, lnBeta(a, b)
	for range 60 {
		mid := (lo + hi) / 2
		if betaCDFWith(mid, a, b, lnB) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}
