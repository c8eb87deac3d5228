//go:build failpoints

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/holdfast/holdfast/manager"
)

// In test builds only, the daemon's wall clock can be moved by a Go
// duration (e.g. -90m): the chaos suite's clock-skew fault. Timers and
// timeouts are not affected.
const (
	// testClockOffsetEnv is the offset at start.
	testClockOffsetEnv = "HOLDFAST_TEST_CLOCK_OFFSET"
	// testClockOffsetFileEnv names a file holding the offset, read again
	// every clockFilePoll, so a test moves a running daemon's clock; an
	// empty or missing file means no offset.
	testClockOffsetFileEnv = "HOLDFAST_TEST_CLOCK_OFFSET_FILE"
	clockFilePoll          = 50 * time.Millisecond
)

// testClock sets cfg.Clock from the environment.
func testClock(cfg *manager.Config, logger *slog.Logger) error {
	v, path := os.Getenv(testClockOffsetEnv), os.Getenv(testClockOffsetFileEnv)
	if v == "" && path == "" {
		return nil
	}
	var off atomic.Int64
	if v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s=%q: want a Go duration: %w", testClockOffsetEnv, v, err)
		}
		off.Store(int64(d))
		logger.Warn("running with an offset wall clock, for tests", "offset", d.String(), "env", testClockOffsetEnv)
	}
	if path != "" {
		read := func() {
			b, err := os.ReadFile(path)
			s := strings.TrimSpace(string(b))
			if err != nil || s == "" {
				off.Store(0)
				return
			}
			if d, err := time.ParseDuration(s); err == nil && int64(d) != off.Load() {
				off.Store(int64(d))
				logger.Warn("wall clock offset changed, for tests", "offset", d.String(), "file", path)
			}
		}
		read()
		go func() { // for the life of the test process
			for range time.Tick(clockFilePoll) {
				read()
			}
		}()
	}
	cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	return nil
}
