package gctune

import (
	"context"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	c := DefaultConfig()
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 200},
		{10 * mib, 200}, // a small state: as the daemon ran before
		{32 * mib, 200}, // 64 MiB of room is 200 %
		{64 * mib, 100}, // 64 MiB of room
		{100 * mib, 64}, // still 64 MiB
		{128 * mib, 50}, // half the live heap from here on
		{400 * mib, 50}, // never below Min
		{40 * mib, 160}, // in between
		{1 << 40, 50},   // huge
	} {
		if got := c.Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d; want %d", tc.live/mib, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Min: 5, Max: 200, Headroom: 1, Every: time.Second, ReleaseEvery: time.Second},
		{Min: 100, Max: 50, Headroom: 1, Every: time.Second, ReleaseEvery: time.Second},
		{Min: 50, Max: 200, Headroom: 0, Every: time.Second, ReleaseEvery: time.Second},
		{Min: 50, Max: 200, Headroom: 1, Every: 0, ReleaseEvery: time.Second},
		{Min: 50, Max: 200, Headroom: 1, Every: time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: Validate = nil", c)
		}
		if err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v: Run = nil", c)
		}
	}
}

// TestRunSetsPercent: Run sets GOGC from this process's live heap before
// it first waits, and returns when ctx ends.
func TestRunSetsPercent(t *testing.T) {
	old := debug.SetGCPercent(123)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := Config{Min: 77, Max: 77, Headroom: 1, Every: time.Hour, ReleaseEvery: time.Hour}
	if err := Run(ctx, c); err != context.Canceled {
		t.Fatalf("Run = %v; want context.Canceled", err)
	}
	if got := debug.SetGCPercent(old); got != 77 {
		t.Errorf("GOGC after Run = %d; want 77", got)
	}
}

// TestRelease: free memory goes back to the system only past both the
// headroom and the live heap, so a steady heap collected at GOGC ≤ 100
// (free at most the live heap) is left alone.
func TestRelease(t *testing.T) {
	c := DefaultConfig()
	const mib = 1 << 20
	for _, tc := range []struct {
		live, free uint64
		want       bool
	}{
		{10 * mib, 20 * mib, false},   // a small heap at GOGC 200
		{10 * mib, 65 * mib, true},    // past the headroom
		{150 * mib, 75 * mib, false},  // steady at GOGC 50
		{150 * mib, 150 * mib, false}, // at most the live heap
		{150 * mib, 200 * mib, true},  // after restoring a large snapshot
	} {
		if got := c.Release(tc.live, tc.free); got != tc.want {
			t.Errorf("Release(live %d MiB, free %d MiB) = %v; want %v", tc.live/mib, tc.free/mib, got, tc.want)
		}
	}
}
