//go:build !linux

package main

import (
	"golang.org/x/sys/unix"
)

// noCoreDumps sets the core size limit to 0 (there is no PR_SET_DUMPABLE
// here).
func noCoreDumps() error {
	return unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0})
}
