//go:build failpoints

package main

import (
	"os"
	"strconv"
	"time"

	"github.com/holdfast/holdfast/manager"
)

// testTune lets the crash-point tests make raft snapshot often, in test
// builds only: HOLDFAST_TEST_SNAPSHOT_THRESHOLD and
// HOLDFAST_TEST_TRAILING_LOGS (entries), HOLDFAST_TEST_SNAPSHOT_INTERVAL
// (a Go duration).
func testTune(cfg *manager.Config) {
	if v, err := strconv.ParseUint(os.Getenv("HOLDFAST_TEST_SNAPSHOT_THRESHOLD"), 10, 64); err == nil && v > 0 {
		cfg.SnapshotThreshold = v
	}
	if v, err := strconv.ParseUint(os.Getenv("HOLDFAST_TEST_TRAILING_LOGS"), 10, 64); err == nil {
		cfg.TrailingLogs = v
	}
	if d, err := time.ParseDuration(os.Getenv("HOLDFAST_TEST_SNAPSHOT_INTERVAL")); err == nil && d > 0 {
		cfg.SnapshotInterval = d
	}
}
