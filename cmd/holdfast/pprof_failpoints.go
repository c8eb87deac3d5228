//go:build failpoints

package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

// testPprof serves net/http/pprof on a loopback port of its own when
// HOLDFAST_TEST_PPROF is set, in test builds only, and logs the address:
// the heap profiles of a large state (docs/PERFORMANCE.md) were taken
// this way. A release build has no such port.
func testPprof(logger *slog.Logger) {
	if os.Getenv("HOLDFAST_TEST_PPROF") == "" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logger.Warn("pprof: cannot listen", "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	logger.Warn("serving pprof, for tests", "pprof_addr", ln.Addr().String())
	go func() { _ = http.Serve(ln, mux) }()
}
