package raftlog

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data, and its size only if it changed.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
