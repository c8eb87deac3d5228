//go:build !failpoints

package main

import (
	"log/slog"

	"github.com/holdfast/holdfast/manager"
)

// testClock changes nothing in a product build: its clock is the
// machine's, whatever the environment says.
func testClock(*manager.Config, *slog.Logger) error { return nil }
