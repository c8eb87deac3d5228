package backoff

import (
	"math/rand/v2"
	"testing"
	"time"
)

// seq returns a source that hands out vs in turn, forever.
func seq(vs ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vs[i%len(vs)]
		i++
		return v
	}
}

func TestDelaysFollowTheRandomSource(t *testing.T) {
	const base, max = 100 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		name string
		r    []float64
		want []time.Duration
	}{
		// The lowest draws stay at base: never a busy loop.
		{"low", []float64{0}, []time.Duration{base, base, base, base}},
		// The highest draws grow 3× a step up to max, then stay there.
		{"high", []float64{0.999999999}, []time.Duration{300 * time.Millisecond, 900 * time.Millisecond, 2700 * time.Millisecond, max, max}},
		// Half-way draws: base + (3×prev - base)/2.
		{"half", []float64{0.5}, []time.Duration{200 * time.Millisecond, 350 * time.Millisecond, 575 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newWithRand(base, max, seq(tc.r...))
			for i, want := range tc.want {
				got := b.Next()
				// The "high" draw is just below 1: allow a nanosecond-scale
				// rounding below the exact bound.
				if got > want || want-got > time.Microsecond {
					t.Fatalf("delay %d = %v; want %v", i, got, want)
				}
			}
		})
	}
}

// Delays from a real (seeded) source spread out, stay within [base, max],
// and Reset brings them back down.
func TestJitterSpreadBoundedAndReset(t *testing.T) {
	const base, max = 10 * time.Millisecond, 200 * time.Millisecond
	src := rand.New(rand.NewPCG(1, 2))
	// Many loops failing together, like workers after a manager dies:
	// their first delays must not coincide.
	firsts := map[time.Duration]bool{}
	for range 50 {
		b := newWithRand(base, max, src.Float64)
		d := b.Next()
		if d < base || d > 3*base {
			t.Fatalf("first delay %v; want within [%v, %v]", d, base, 3*base)
		}
		firsts[d] = true
	}
	if len(firsts) < 40 {
		t.Errorf("50 loops drew only %d distinct first delays; want them spread", len(firsts))
	}

	b := newWithRand(base, max, src.Float64)
	var sawMax bool
	for i := range 200 {
		d := b.Next()
		if d < base || d > max {
			t.Fatalf("delay %d = %v; want within [%v, %v]", i, d, base, max)
		}
		sawMax = sawMax || d > max/2
	}
	if !sawMax {
		t.Errorf("200 failures in a row never waited over %v; want the delays to grow", max/2)
	}
	b.Reset()
	if d := b.Next(); d > 3*base {
		t.Errorf("first delay after Reset = %v; want at most %v", d, 3*base)
	}
}

func TestNewRefusesBadBounds(t *testing.T) {
	for _, tc := range []struct{ base, max time.Duration }{{0, time.Second}, {time.Second, time.Millisecond}, {-1, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%v, %v) did not panic", tc.base, tc.max)
				}
			}()
			New(tc.base, tc.max)
		}()
	}
}
