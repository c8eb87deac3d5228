//go:build !linux

package main

import "syscall"

// benchSysProcAttr is the default here: no parent-death signal outside
// Linux.
func benchSysProcAttr() *syscall.SysProcAttr { return nil }
