package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff hands out the delays of one retry loop. Its zero value is not
// usable; make one with New.
type Backoff struct {
	base, max time.Duration
	rand      func() float64
	prev      time.Duration
}

// New returns a Backoff whose delays lie in [base, max]. It panics unless
// 0 < base <= max: the bounds are constants of the caller.
func New(base, max time.Duration) *Backoff {
	return newWithRand(base, max, rand.Float64)
}

// newWithRand is New with the random source r, returning values in
// [0, 1), for tests.
func newWithRand(base, max time.Duration, r func() float64) *Backoff {
	if base <= 0 || max < base {
		panic("backoff: need 0 < base <= max")
	}
	return &Backoff{base: base, max: max, rand: r, prev: base}
}

// Next returns how long to wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	hi := min(3*b.prev, b.max)
	d := b.base + time.Duration(b.rand()*float64(hi-b.base))
	d = min(max(d, b.base), b.max)
	b.prev = d
	return d
}

// Reset starts the delays again from base, after a success.
func (b *Backoff) Reset() { b.prev = b.base }
