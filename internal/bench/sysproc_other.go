//go:build !linux

package bench

import "syscall"

// benchSysProcAttr is the default here: no parent-death signal outside
// Linux.
func benchSysProcAttr() *syscall.SysProcAttr { return nil }
