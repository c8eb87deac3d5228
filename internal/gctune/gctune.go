// Package gctune adapts the garbage collector's GOGC to the live heap, so
// that a daemon with a small state collects rarely (a high GOGC costs a
// few tens of MiB) and one with a large state does not hold several
// times its live heap (GOGC 200 over a live heap of 150 MiB lets the heap
// grow to 450 MiB).
//
// # Caller's duties
//
//  1. Leave GOGC alone if the environment sets it: the operator's choice
//     wins (the caller checks; this package does not read the environment).
//  2. Run Run in a goroutine of its own with DefaultConfig (or a Config
//     that Validates) and a context that ends when the daemon stops.
//
// The rule is Percent: the heap may grow past the live heap by half the
// live heap or by Config.Headroom, whichever is more, with GOGC between
// Config.Min and Config.Max. And Release: when the heap holds more free
// memory than that room or the live heap, whichever is more — a spike
// is over, such as a snapshot of a large state restored at unlock — the
// tuner returns it to the system (debug.FreeOSMemory) at once rather
// than leave it to the runtime's slow background scavenger, at most once
// per Config.ReleaseEvery.
package gctune

import (
	"context"
	"errors"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config is the tuner's rule and how often it reads the live heap.
type Config struct {
	// Min and Max bound GOGC.
	Min, Max int
	// Headroom is how far the heap may always grow past the live heap,
	// in bytes, before the collector runs.
	Headroom uint64
	// Every is how often the live heap is read.
	Every time.Duration
	// ReleaseEvery is the least time between two releases.
	ReleaseEvery time.Duration
}

// DefaultConfig is GOGC 200 (what the daemon used alone) up to a live
// heap of 32 MiB, then as much as 64 MiB or half the live heap, at least
// 50.
func DefaultConfig() Config {
	return Config{Min: 50, Max: 200, Headroom: 64 << 20, Every: 500 * time.Millisecond, ReleaseEvery: 30 * time.Second}
}

// Validate checks the bounds.
func (c Config) Validate() error {
	var errs []error
	if c.Min < 10 || c.Max < c.Min {
		errs = append(errs, errors.New("gctune: want 10 ≤ Min ≤ Max"))
	}
	if c.Headroom == 0 {
		errs = append(errs, errors.New("gctune: Headroom must be positive"))
	}
	if c.Every <= 0 || c.ReleaseEvery <= 0 {
		errs = append(errs, errors.New("gctune: Every and ReleaseEvery must be positive"))
	}
	return errors.Join(errs...)
}

// Percent is GOGC for a live heap of live bytes.
func (c Config) Percent(live uint64) int {
	if live == 0 {
		return c.Max
	}
	room := max(c.Headroom, live/2)
	p := room * 100 / live
	if p > uint64(c.Max) {
		return c.Max
	}
	return max(int(p), c.Min)
}

// Release reports whether a heap with live bytes live and free bytes
// free (not yet returned to the system) should give the free memory back.
func (c Config) Release(live, free uint64) bool {
	return free > max(c.Headroom, live)
}

const (
	liveMetric = "/gc/heap/live:bytes"
	freeMetric = "/memory/classes/heap/free:bytes"
)

func readUint(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
}

// Run sets GOGC from the live heap now, then every cfg.Every, until ctx
// ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	sample := []metrics.Sample{{Name: liveMetric}, {Name: freeMetric}}
	last := -1
	var released time.Time
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		live, free := readUint(sample[0]), readUint(sample[1])
		if p := cfg.Percent(live); p != last {
			debug.SetGCPercent(p)
			last = p
		}
		if cfg.Release(live, free) && time.Since(released) >= cfg.ReleaseEvery {
			debug.FreeOSMemory()
			released = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
