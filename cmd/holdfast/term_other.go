//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"context"
	"errors"
	"os"
)

// isTTY is false where this build cannot switch echo off: holdfast then
// reads the key as from a pipe, and never prompts.
func isTTY(*os.File) bool { return false }

func readNoEcho(context.Context, *os.File) ([]byte, error) {
	return nil, errors.New("reading without echo is not supported on this system")
}
