package ca

import (
	"testing"
	"time"
)

func TestRenewIn(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(100 * time.Hour)
	tests := []struct {
		name string
		now  time.Time
		frac float64
		want time.Duration
	}{
		{"start of the window", nb, 0, 50 * time.Hour},
		{"end of the window", nb, 1, 80 * time.Hour},
		{"middle, from later", nb.Add(10 * time.Hour), 0.5, 55 * time.Hour},
		{"past the point: due now", nb.Add(90 * time.Hour), 0.5, 0},
		{"exactly at the point", nb.Add(65 * time.Hour), 0.5, 0},
		{"expired", na.Add(time.Hour), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RenewIn(nb, na, tt.now, func() float64 { return tt.frac }); got != tt.want {
				t.Errorf("RenewIn(now=%s, frac=%v) = %s; want %s", tt.now, tt.frac, got, tt.want)
			}
		})
	}
}

// TestRenewAtStaysInWindow draws the point many times and checks each is
// in 50–80 % of the lifetime, and that the draws spread over the window.
func TestRenewAtStaysInWindow(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * 24 * time.Hour)
	lo, hi := nb.Add(45*24*time.Hour), nb.Add(72*24*time.Hour)
	seq := []float64{0, 0.25, 0.5, 0.75, 1}
	var first, last time.Time
	for i, f := range seq {
		at := RenewAt(nb, na, func() float64 { return f })
		if at.Before(lo) || at.After(hi) {
			t.Fatalf("RenewAt(frac=%v) = %s; want between %s and %s", f, at, lo, hi)
		}
		if i > 0 && !at.After(last) {
			t.Errorf("RenewAt(frac=%v) = %s; want after %s (frac=%v)", f, at, last, seq[i-1])
		}
		if i == 0 {
			first = at
		}
		last = at
	}
	if !first.Equal(lo) || !last.Equal(hi) {
		t.Errorf("window is %s..%s; want %s..%s", first, last, lo, hi)
	}
}

func TestExpired(t *testing.T) {
	na := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		now  time.Time
		want bool
	}{{na.Add(-time.Nanosecond), false}, {na, true}, {na.Add(time.Hour), true}} {
		if got := Expired(na, tt.now); got != tt.want {
			t.Errorf("Expired(%s, %s) = %v; want %v", na, tt.now, got, tt.want)
		}
	}
}
