//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// isTTY reports whether f is a terminal (it has terminal attributes;
// /dev/null, a character device too, has none).
func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}

// errInterrupted is the answer to ^C while a secret is being typed.
var errInterrupted = errors.New("interrupted")

// readNoEcho reads one line from the terminal f with echo off, restoring
// the terminal afterwards, also when interrupted (^C, SIGTERM) or when ctx
// ends. golang.org/x/term would do this, but it is not a requirement of
// go.mod; golang.org/x/sys, which it builds on, is.
func readNoEcho(ctx context.Context, f *os.File) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &quiet); err != nil {
		return nil, err
	}
	defer unix.IoctlSetTermios(fd, ioctlSetTermios, old)

	// Catch ^C so that the deferred restore runs: a shell left without
	// echo is a poor way to leave.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	type result struct {
		line []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := readLine(f)
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-sig:
		return nil, errInterrupted
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
