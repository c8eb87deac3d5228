package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// noCoreDumps keeps key material out of core dumps: the process is made
// non-dumpable (no core file, and no ptrace or /proc/PID/mem by other
// users) and its core size limit is set to 0.
func noCoreDumps() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	return nil
}
