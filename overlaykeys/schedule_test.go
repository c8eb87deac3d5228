package overlaykeys

import (
	"slices"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const every = 12 * time.Hour
	ring := func(rotated time.Time) *Ring {
		return &Ring{RotatedAt: rotated, Keys: []Key{{ID: "k", Lamport: 1, CreatedAt: rotated}}}
	}
	tests := []struct {
		name  string
		rings Keyrings
		now   time.Time
		due   []Subsystem
		next  time.Time
	}{
		{"no rings: both due at once", Keyrings{}, t0, []Subsystem{Gossip, IPsec}, time.Time{}},
		{"empty ring is due", Keyrings{Gossip: {}, IPsec: ring(t0)}, t0, []Subsystem{Gossip}, t0.Add(every)},
		{"neither due: the earlier is next", Keyrings{Gossip: ring(t0.Add(time.Hour)), IPsec: ring(t0)}, t0.Add(2 * time.Hour), nil, t0.Add(every)},
		{"due exactly at the interval", Keyrings{Gossip: ring(t0), IPsec: ring(t0.Add(time.Hour))}, t0.Add(every), []Subsystem{Gossip}, t0.Add(time.Hour + every)},
		{"one nanosecond early is not due", Keyrings{Gossip: ring(t0), IPsec: ring(t0)}, t0.Add(every - 1), nil, t0.Add(every)},
		{"both overdue", Keyrings{Gossip: ring(t0), IPsec: ring(t0)}, t0.Add(3 * every), []Subsystem{Gossip, IPsec}, time.Time{}},
		{"a clock behind the last rotation waits", Keyrings{Gossip: ring(t0), IPsec: ring(t0)}, t0.Add(-time.Hour), nil, t0.Add(every)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rings.Plan(every, tt.now)
			if !slices.Equal(got.Due, tt.due) {
				t.Errorf("Due = %v; want %v", got.Due, tt.due)
			}
			if !got.Next.Equal(tt.next) {
				t.Errorf("Next = %v; want %v", got.Next, tt.next)
			}
		})
	}
}
