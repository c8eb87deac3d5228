//go:build !failpoints

package main

import "log/slog"

// testPprof does nothing in a release build (pprof_failpoints.go).
func testPprof(*slog.Logger) {}
