package testutil

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// In a synctest bubble the clock is fake: timeouts pass as soon as every
// goroutine waits, so these tests never wait for real.

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		err := Poll(time.Minute, func() (bool, string) {
			calls++
			return calls == 5, "not yet"
		})
		if err != nil {
			t.Fatalf("Poll: %v; want nil", err)
		}
		if calls != 5 {
			t.Errorf("cond called %d times; want 5 (stop at the first true)", calls)
		}
		// Checked at once, then at every tick: 4 ticks.
		if got := time.Since(start); got != 4*Tick {
			t.Errorf("Poll took %v of fake time; want %v", got, 4*Tick)
		}
	})
}

func TestPollTimesOutWithTheLastReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := 0
		err := Poll(time.Second, func() (bool, string) {
			n++
			return false, "seen " + string(rune('0'+n%10))
		})
		if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
			t.Fatalf("Poll: %v; want a timeout after 1s", err)
		}
		if want := "seen " + string(rune('0'+n%10)); !strings.HasSuffix(err.Error(), want) {
			t.Errorf("Poll error %q; want the last reason %q", err, want)
		}
		if got := time.Since(start); got < time.Second || got > time.Second+Tick {
			t.Errorf("timed out after %v of fake time; want 1s", got)
		}
	})
}

// fatalTB records Fatal and ends its goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestEventuallyFailsTheTest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fatalTB{}
		var wg sync.WaitGroup
		wg.Go(func() {
			Eventually(f, 50*time.Millisecond, Waiting("the sky to fall", func() bool { return false }))
			t.Error("Eventually returned after its timeout; want Fatal")
		})
		wg.Wait()
		if want := "timed out after 50ms: waiting for the sky to fall"; f.msg != want {
			t.Errorf("Fatal(%q); want %q", f.msg, want)
		}
	})
	ok := false
	Eventually(t, time.Second, func() (bool, string) { ok = true; return true, "" })
	if !ok {
		t.Error("Eventually did not check its condition")
	}
}
