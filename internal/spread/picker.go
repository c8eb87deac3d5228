package spread

import (
	"math/rand/v2"
	"time"
)

// A Picker chooses which of a few targets (the managers) one caller (a
// worker, by its node ID) talks to: its first choice by Order while that
// answers, the next on each failure, and back to its first choice a while
// after it left it — a random time in [Return, 2×Return), so that the
// callers a failed target sent elsewhere do not all come back at once.
// The caller waits its own jittered backoff between failures.
//
// A Picker is not safe for concurrent use: one per loop.
type Picker struct {
	key    string
	ret    time.Duration
	now    func() time.Time
	rand   func() float64
	next   int       // failures since the first choice
	backAt time.Time // when to go back to the first choice (next > 0)
}

// NewPicker returns a Picker for key that goes back to its first choice
// between ret and 2×ret after leaving it.
func NewPicker(key string, ret time.Duration) *Picker {
	return &Picker{key: key, ret: ret, now: time.Now, rand: rand.Float64}
}

// Pick returns the index in ids of the target to talk to now, or -1 if
// ids is empty.
func (p *Picker) Pick(ids []string) int {
	if len(ids) == 0 {
		return -1
	}
	if p.next > 0 && !p.now().Before(p.backAt) {
		p.next = 0
	}
	order := Order(p.key, indices(len(ids)), func(i int) string { return ids[i] })
	return order[p.next%len(order)]
}

// Failed records that the target Pick returned failed: the next Pick
// returns the next in order.
func (p *Picker) Failed() {
	if p.next == 0 {
		p.backAt = p.now().Add(p.ret + time.Duration(p.rand()*float64(p.ret)))
	}
	p.next++
}

func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
