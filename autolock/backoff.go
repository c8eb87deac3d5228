package autolock

import (
	"context"
	"sync"
	"time"
)

// Backoff delays the next unlock attempt after wrong keys: after the k-th
// consecutive failure the next attempt is allowed
// min(BackoffBase·2^(k-1), BackoffMax) later. It is safe for concurrent
// use. The zero Backoff uses the real clock.
type Backoff struct {
	now   func() time.Time
	after func(time.Duration) <-chan time.Time

	mu       sync.Mutex
	failures int
	next     time.Time // no attempt before this; zero: none pending
}

// The backoff's first delay and its ceiling.
const (
	BackoffBase = 100 * time.Millisecond
	BackoffMax  = 10 * time.Second
)

// NewBackoff returns a Backoff that reads the time with now and waits
// with after (time.Now and time.After when nil). Tests pass a fake clock.
func NewBackoff(now func() time.Time, after func(time.Duration) <-chan time.Time) *Backoff {
	return &Backoff{now: now, after: after}
}

func (b *Backoff) clock() (func() time.Time, func(time.Duration) <-chan time.Time) {
	now, after := b.now, b.after
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	return now, after
}

// Wait blocks until the next attempt is allowed, and returns nil; or
// returns ctx.Err() if ctx is done first (or already).
func (b *Backoff) Wait(ctx context.Context) error {
	_, after := b.clock()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := b.Delay()
		if d <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-after(d):
			// Look again: a Fail meanwhile may have moved the time on.
		}
	}
}

// Delay returns how long until the next attempt is allowed (0 if now).
func (b *Backoff) Delay() time.Duration {
	now, _ := b.clock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next.IsZero() {
		return 0
	}
	return max(b.next.Sub(now()), 0)
}

// Fail records a failed attempt and pushes the next one back.
func (b *Backoff) Fail() {
	now, _ := b.clock()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	b.next = now().Add(backoffDelay(b.failures))
}

// Succeed records a successful attempt: the next one may come at once.
func (b *Backoff) Succeed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
	b.next = time.Time{}
}

// Failures returns the number of consecutive failed attempts.
func (b *Backoff) Failures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures
}

// backoffDelay is min(BackoffBase·2^(k-1), BackoffMax) for k >= 1.
func backoffDelay(k int) time.Duration {
	if k < 1 {
		return 0
	}
	d := BackoffBase
	for i := 1; i < k && d < BackoffMax; i++ {
		d *= 2
	}
	return min(d, BackoffMax)
}
