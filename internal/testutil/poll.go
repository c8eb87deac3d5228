package testutil

import (
	"fmt"
	"testing"
	"time"
)

// Tick is how often Poll and Eventually check their condition.
const Tick = 10 * time.Millisecond

// Poll checks cond at once and then at every Tick until it returns true,
// and returns nil; when timeout passes first it returns an error quoting
// what cond said last.
func Poll(timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(Tick)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		select {
		case <-deadline.C:
			return fmt.Errorf("timed out after %s: %s", timeout, why)
		case <-tick.C:
		}
	}
}

// Eventually is Poll that fails tb (Fatal) on timeout.
func Eventually(tb testing.TB, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	if err := Poll(timeout, cond); err != nil {
		tb.Fatal(err)
	}
}

// Waiting adapts a plain condition to Eventually and Poll: while cond is
// false it says "waiting for what".
func Waiting(what string, cond func() bool) func() (bool, string) {
	return func() (bool, string) { return cond(), "waiting for " + what }
}
