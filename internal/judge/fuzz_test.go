package judge

import (
	"math"
	"reflect"
	"testing"
)

// byteReader hands out fuzz bytes, 0 once they run out.
type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *byteReader) value() float64 {
	switch c := r.next(); {
	case c < 200:
		return float64(int8(r.next())) * []float64{1, 0.125, 1000, 1e-9}[c%4]
	case c < 210:
		return math.NaN()
	case c < 220:
		return math.Inf(1)
	case c < 230:
		return math.Inf(-1)
	case c < 240:
		return math.MaxFloat64
	case c < 250:
		return -math.MaxFloat64
	default:
		return math.SmallestNonzeroFloat64
	}
}

func (r *byteReader) series() []float64 {
	n := int(r.next() % 40)
	if n == 39 {
		return nil
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = r.value()
	}
	return out
}

// decodeCase turns fuzz bytes into a Config (possibly invalid) and data.
func decodeCase(b []byte) (Config, map[string]Series) {
	r := &byteReader{b: b}
	var c Config
	data := map[string]Series{}
	n := 1 + int(r.next()%5)
	for i := range n {
		f := r.next()
		g := r.next()
		m := Metric{
			Name:           string(rune('a' + i)),
			Group:          []string{"", "x", "y"}[g%3],
			Direction:      []Direction{"", Increase, Decrease, Either}[f%4],
			Critical:       f&4 != 0,
			NodataPolicy:   []NodataPolicy{"", NodataFail}[f>>3&1],
			OutlierRemoval: f&16 != 0,
			NaNStrategy:    []NaNStrategy{"", NaNReplace}[f>>5&1],
			Muted:          f&64 != 0 && g&64 != 0,
		}
		if f&128 != 0 {
			m.EffectSizeMeasure = CLES
			m.AllowedIncrease = float64(g>>2%5) / 4
			m.AllowedDecrease = float64(g>>5%5) / 4
		} else {
			m.AllowedIncrease = float64(g>>2%5) * 0.25
			m.Tolerance = float64(g>>5) / 4
		}
		c.Metrics = append(c.Metrics, m)
		if g&128 != 0 {
			continue // absent
		}
		data[m.Name] = Series{Baseline: r.series(), Canary: r.series()}
	}
	k := r.next()
	c.Confidence = []float64{0, 0.5, 0.9, 0.95, 0.999, 1}[k%6]
	c.PassScore = []float64{0, 100, 50, 0.01}[k>>3%4]
	c.MarginalScore = []float64{0, 10, 100}[k>>5%3]
	if k&128 != 0 {
		c.GroupWeights = map[string]float64{"x": float64(r.next()), "y": float64(r.next() % 60)}
	}
	return c, data
}

// FuzzJudge: Judge never panics, errs only on an invalid Config, and every
// Result keeps the invariants (score in 0..100, finite figures, no PASS
// while a critical metric is not Pass or when no metric has data, same
// Result on a second run).
func FuzzJudge(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 10, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14, 0, 15, 0, 16, 0, 17, 0, 18, 0, 19, 0, 20})
	f.Add([]byte{3, 4, 1, 5, 235, 245, 0, 1, 0, 2, 3, 0, 100, 1, 101, 0, 205, 215, 225})
	f.Add([]byte{1, 4, 0, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 6, 1, 9, 1, 9, 1, 9, 1, 9, 1, 9, 1, 9, 200})
	f.Add([]byte{2, 16, 1, 20, 0, 10, 0, 11, 0, 12, 0, 10, 0, 11, 0, 12, 0, 10, 0, 11, 0, 12, 0, 127, 20, 0, 20, 0, 20, 0, 21, 0, 22, 0, 20, 0, 20, 0, 20, 0, 21, 0, 22, 0, 20, 0, 20, 0, 20, 0, 21, 0, 22, 0, 20, 0, 20, 0, 20, 0, 21, 0, 22, 0, 20, 0, 20, 0, 20, 0, 21, 0, 22, 128, 30, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, data := decodeCase(b)
		res, err := Judge(c, data)
		if verr := c.Validate(); (err != nil) != (verr != nil) {
			t.Fatalf("Judge error %v, Validate error %v", err, verr)
		}
		if err != nil {
			return
		}
		checkInvariants(t, c, res)
		again, _ := Judge(c, data)
		if !reflect.DeepEqual(res, again) {
			t.Fatal("a second run differs")
		}
	})
}
