package scorer

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBetaCDFClosedForms(t *testing.T) {
	t.Parallel()
	for _, x := range []float64{0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99} {
		require.InDelta(t, x, betaCDF(x, 1, 1), 1e-12, "uniform")
		require.InDelta(t, x*x*x, betaCDF(x, 3, 1), 1e-12, "Beta(a,1) = x^a")
		require.InDelta(t, 1-math.Pow(1-x, 4), betaCDF(x, 1, 4), 1e-12, "Beta(1,b) = 1-(1-x)^b")
		// Beta(2,2): 3x² - 2x³.
		require.InDelta(t, 3*x*x-2*x*x*x, betaCDF(x, 2, 2), 1e-12)
	}
	require.Equal(t, 0.0, betaCDF(0, 2, 3))
	require.Equal(t, 1.0, betaCDF(1, 2, 3))
	require.InDelta(t, 0.5, betaCDF(0.5, 500, 500), 1e-9, "symmetric, large counts")
}

// TestBetaCDFAgainstIntegration checks I_x(a,b) against Simpson's rule on the density.
func TestBetaCDFAgainstIntegration(t *testing.T) {
	t.Parallel()
	for _, c := range [][2]float64{{8, 2}, {3, 5}, {21, 4}, {1.5, 2.5}} {
		a, b := c[0], c[1]
		la, _ := math.Lgamma(a)
		lb, _ := math.Lgamma(b)
		lab, _ := math.Lgamma(a + b)
		pdf := func(x float64) float64 { return math.Exp((a-1)*math.Log(x) + (b-1)*math.Log1p(-x) - la - lb + lab) }
		for _, x := range []float64{0.2, 0.5, 0.8} {
			const n = 20000
			h := x / n
			sum := pdf(1e-300) + pdf(x)
			for i := 1; i < n; i++ {
				w := 2.0
				if i%2 == 1 {
					w = 4
				}
				sum += w * pdf(float64(i)*h)
			}
			require.InDelta(t, sum*h/3, betaCDF(x, a, b), 1e-6, "Beta(%v,%v) at %v", a, b, x)
		}
	}
}

func TestBetaQuantile(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 0.05, betaQuantile(0.05, 1, 1), 1e-12)
	require.InDelta(t, 0.95, betaQuantile(0.95, 1, 1), 1e-12)
	// 2 of 2 successes: Beta(3,1), CDF x³.
	require.InDelta(t, math.Cbrt(0.05), betaQuantile(0.05, 3, 1), 1e-12)
	require.InDelta(t, math.Cbrt(0.95), betaQuantile(0.95, 3, 1), 1e-12)
	for _, c := range [][3]float64{{0.05, 8, 2}, {0.95, 8, 2}, {0.5, 30, 70}, {0.05, 1, 1000}} {
		q := betaQuantile(c[0], c[1], c[2])
		require.InDelta(t, c[0], betaCDF(q, c[1], c[2]), 1e-9)
	}
}
