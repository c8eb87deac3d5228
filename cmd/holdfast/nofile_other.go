//go:build !unix

package main

import "errors"

// openFileLimit has nothing to read where there is no RLIMIT_NOFILE.
func openFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("no open-file limit on this system")
}
