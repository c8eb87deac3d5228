package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// readHidden prompts on stderr and reads one line from the terminal f
// without echo (golang.org/x/term), restoring the terminal also when
// interrupted (^C, SIGTERM) or when ctx ends: a shell left without echo
// is a poor way to leave.
func (c *cli) readHidden(ctx context.Context, f *os.File, prompt string) ([]byte, error) {
	fd := int(f.Fd())
	old, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	fmt.Fprint(c.stderr, prompt)
	defer fmt.Fprintln(c.stderr)
	type result struct {
		line []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := term.ReadPassword(fd)
		done <- result{line, err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-sig:
		_ = term.Restore(fd, old)
		return nil, errInterrupted
	case <-ctx.Done():
		_ = term.Restore(fd, old)
		return nil, ctx.Err()
	}
}
