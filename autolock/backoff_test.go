package autolock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeClock is a manual clock: time moves only in advance, and every
// after() channel fires when the clock reaches its deadline. Each after()
// call reports its duration on asked, so a test knows a waiter is parked.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	waiters []fakeTimer
	asked   chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Unix(1_700_000_000, 0), asked: make(chan time.Duration, 100)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeTimer{c.t.Add(d), ch})
	c.mu.Unlock()
	c.asked <- d
	return ch
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.t) {
			w.ch <- c.t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func TestBackoffDelays(t *testing.T) {
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond,
		6400 * time.Millisecond, 10 * time.Second, 10 * time.Second,
	}
	c := newFakeClock()
	b := NewBackoff(c.now, c.after)
	if d := b.Delay(); d != 0 {
		t.Fatalf("before any failure: got %v; want 0", d)
	}
	for k, w := range want {
		b.Fail()
		if got := b.Delay(); got != w {
			t.Fatalf("after failure %d: got %v; want %v", k+1, got, w)
		}
		if got := b.Failures(); got != k+1 {
			t.Fatalf("Failures: got %d; want %d", got, k+1)
		}
	}
	c.advance(3 * time.Second)
	if got := b.Delay(); got != 7*time.Second {
		t.Fatalf("3s later: got %v; want 7s", got)
	}
	c.advance(7 * time.Second)
	if got := b.Delay(); got != 0 {
		t.Fatalf("10s later: got %v; want 0", got)
	}
	b.Succeed()
	if b.Failures() != 0 || b.Delay() != 0 {
		t.Fatal("Succeed did not reset")
	}
	b.Fail()
	if got := b.Delay(); got != 100*time.Millisecond {
		t.Fatalf("first failure after Succeed: got %v; want 100ms", got)
	}
	for k := range 10_000 {
		if d := backoffDelay(k + 1); d <= 0 || d > BackoffMax {
			t.Fatalf("backoffDelay(%d) = %v", k+1, d)
		}
	}
}

func TestBackoffWait(t *testing.T) {
	c := newFakeClock()
	b := NewBackoff(c.now, c.after)
	ctx := context.Background()

	// No failure: Wait returns at once, without a timer.
	if err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if len(c.asked) != 0 {
		t.Fatal("Wait set a timer with no failure")
	}

	for range 3 {
		b.Fail()
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	if d := <-c.asked; d != 400*time.Millisecond {
		t.Fatalf("after 3 failures Wait waits %v; want 400ms", d)
	}
	c.advance(399 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v before its time", err)
	default:
	}
	c.advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}

	// A failure during a wait pushes it back: Wait looks again.
	b.Fail() // 4th: 800ms
	go func() { done <- b.Wait(ctx) }()
	if d := <-c.asked; d != 800*time.Millisecond {
		t.Fatalf("Wait waits %v; want 800ms", d)
	}
	c.advance(500 * time.Millisecond)
	b.Fail() // 5th: 1600ms from now
	c.advance(300 * time.Millisecond)
	if d := <-c.asked; d != 1300*time.Millisecond {
		t.Fatalf("after a failure during the wait, Wait waits %v more; want 1.3s", d)
	}
	c.advance(1300 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestBackoffWaitContext(t *testing.T) {
	c := newFakeClock()
	b := NewBackoff(c.now, c.after)
	b.Fail()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	<-c.asked
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}

	// An ended context wins even when no wait is due.
	b.Succeed()
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
}

// TestBackoffRealClock runs the default clock (time.Now, time.After) in a
// synctest bubble, whose fake time makes the waits exact and instant.
func TestBackoffRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b Backoff // the zero Backoff works
		for _, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
			b.Fail()
			start := time.Now()
			if err := b.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != want {
				t.Fatalf("waited %v; want %v", got, want)
			}
		}
		b.Fail()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want DeadlineExceeded", err)
		}
		if got := time.Since(start); got != 300*time.Millisecond {
			t.Fatalf("gave up after %v; want 300ms", got)
		}
	})
}

func TestBackoffConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBackoff(nil, nil)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for range 5 {
					if err := b.Wait(t.Context()); err != nil {
						t.Error(err)
						return
					}
					if i%4 == 0 {
						b.Succeed()
					} else {
						b.Fail()
					}
					_ = b.Failures()
				}
			})
		}
		wg.Wait()
	})
}
