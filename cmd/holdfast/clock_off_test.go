//go:build !failpoints

package main

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/holdfast/holdfast/manager"
)

// TestProductBuildIgnoresClockOffset: a build without the failpoints tag
// has no way to move its clock, even with the test build's variable set.
func TestProductBuildIgnoresClockOffset(t *testing.T) {
	t.Setenv("HOLDFAST_TEST_CLOCK_OFFSET", "-90m")
	t.Setenv("HOLDFAST_TEST_CLOCK_OFFSET_FILE", filepath.Join(t.TempDir(), "offset"))
	cfg := manager.DefaultConfig(t.TempDir())
	if err := testClock(&cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	testTune(&cfg)
	if cfg.Clock != nil {
		t.Fatalf("a product build set Config.Clock from HOLDFAST_TEST_CLOCK_OFFSET; want the machine's clock")
	}
}
