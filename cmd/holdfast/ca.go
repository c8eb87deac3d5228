package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/holdfast/holdfast/api"
)

// caPollInterval is how often `ca --rotate` asks for progress.
const caPollInterval = 250 * time.Millisecond

func setupCA(c *cli, fs *flag.FlagSet) action {
	rotate := fs.Bool("rotate", false, "rotate the root CA: cross-sign a new root, renew every node onto it, then drop the old one and change both join tokens")
	caCert := fs.String("ca-cert", "", "with --rotate: rotate to the root CA certificate in `FILE` (PEM) instead of a new one; needs --ca-key")
	caKey := fs.String("ca-key", "", "the private key of --ca-cert, in `FILE` (PEM)")
	detach := fs.Bool("detach", false, "with --rotate: return once the rotation has started")
	quiet := fs.Bool("q", false, "print only the root CA certificate (with --rotate: the new one, when done; with --detach: the rotation ID), no progress")
	format := outputFlag(fs)
	follow := fs.Bool("follow", false, "follow the CA rotation in progress until every node is on the new root; never starts one (none in progress: says so, exit 0)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		if (*caCert == "") != (*caKey == "") {
			return usagef("--ca-cert and --ca-key go together")
		}
		if !*rotate && (*caCert != "" || *detach) {
			return usagef("--ca-cert, --ca-key and --detach go with --rotate")
		}
		if *follow && *rotate {
			return usagef("--follow only follows a rotation in progress; --rotate starts one (and follows it): give one of them")
		}
		if *follow && isSet(fs, "format") {
			return usagef("--format is for showing the root CA; it does not go with --follow")
		}
		if *rotate && isSet(fs, "format") {
			return usagef("--format is for showing the root CA; it does not go with --rotate")
		}
		cl := c.client()
		defer cl.Close()
		if *follow {
			r, err := cl.CARotation(ctx)
			if err != nil {
				return err
			}
			if r.State != api.CARotationRotating {
				if !*quiet {
					return printNoRotation(c.stdout, r)
				}
				return c.printRoot(ctx, cl)
			}
			return c.followToEnd(ctx, cl, r, *quiet)
		}
		if !*rotate {
			info, err := cl.CA(ctx)
			if err != nil {
				return err
			}
			if format.doc() && !*quiet {
				return format.write(c.stdout, info)
			}
			_, err = io.WriteString(c.stdout, info.RootPEM)
			return err
		}
		var req api.CARotateRequest
		if *caCert != "" {
			cert, err := readFile("--ca-cert", *caCert)
			if err != nil {
				return err
			}
			key, err := readFile("--ca-key", *caKey)
			if err != nil {
				return err
			}
			req.CACertPEM, req.CAKeyPEM = string(cert), string(key)
		}
		r, err := cl.RotateCA(ctx, req)
		if err != nil {
			return err
		}
		if *detach {
			if *quiet {
				_, err = fmt.Fprintln(c.stdout, r.ID)
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "CA rotation %s started, to root %s; follow it with 'holdfast ca --follow'.\n", r.ID, r.NewDigest)
			return err
		}
		return c.followToEnd(ctx, cl, r, *quiet)
	}
}

// followToEnd follows the rotation r until it is done, with progress on a
// terminal unless quiet, then says so, or with quiet prints the new root.
func (c *cli) followToEnd(ctx context.Context, cl *api.Client, r *api.CARotation, quiet bool) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var prog *progress
	if !quiet {
		prog = newProgress(c.stderr)
	}
	r, err := followRotation(ctx, cl, r, prog)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following CA rotation %s; it goes on: run 'holdfast ca --follow' to follow it again", r.ID)
		}
		return err
	}
	if quiet {
		return c.printRoot(ctx, cl)
	}
	_, err = fmt.Fprintf(c.stdout, "CA rotation %s done: all %d nodes hold certificates from the new root %s.\nThe old root is no longer trusted, and both join tokens changed ('holdfast join-token worker|manager').\n", r.ID, r.Nodes, r.NewDigest)
	return err
}

// printRoot prints the cluster's root CA certificate (PEM).
func (c *cli) printRoot(ctx context.Context, cl *api.Client) error {
	info, err := cl.CA(ctx)
	if err != nil {
		return err
	}
	_, err = io.WriteString(c.stdout, info.RootPEM)
	return err
}

// printNoRotation answers 'ca --follow' when no rotation is in progress.
func printNoRotation(w io.Writer, r *api.CARotation) error {
	if r.State == api.CARotationDone && r.ID != "" {
		_, err := fmt.Fprintf(w, "No CA rotation is in progress; the last one, %s, is done (root %s, finished %s).\n", r.ID, orDash(r.NewDigest), fmtTime(r.FinishedAt))
		return err
	}
	_, err := fmt.Fprintln(w, "No CA rotation is in progress.")
	return err
}

// followRotation polls the rotation r until it is done, reporting progress
// to prog (nil: none) when it changes.
func followRotation(ctx context.Context, cl *api.Client, r *api.CARotation, prog *progress) (*api.CARotation, error) {
	id := r.ID
	last := ""
	for {
		if r.ID != id {
			return r, fmt.Errorf("CA rotation %s is no longer the current one (now %s)", id, r.ID)
		}
		if r.State == api.CARotationDone {
			if prog != nil {
				prog.done()
			}
			return r, nil
		}
		if line := rotationLine(r, prog != nil && prog.tty); prog != nil && line != last {
			prog.step("%s", line)
			last = line
		}
		select {
		case <-ctx.Done():
			if prog != nil {
				prog.done()
			}
			return r, ctx.Err()
		case <-time.After(caPollInterval):
		}
		next, err := cl.CARotation(ctx)
		if err != nil {
			var ae *api.Error
			if ctx.Err() != nil || errors.As(err, &ae) && !ae.Temporary() && ae.Code != api.CodeInternal {
				if prog != nil {
					prog.done()
				}
				return r, err
			}
			continue // no leader for a moment, a daemon restarting, a failed read: keep following
		}
		r = next
	}
}

// rotationLine is one progress report: a bar on a terminal, then the count
// and the nodes waited for.
func rotationLine(r *api.CARotation, bar bool) string {
	var b strings.Builder
	if bar {
		const width = 20
		filled := 0
		if r.Nodes > 0 {
			filled = r.Converted * width / r.Nodes
		}
		b.WriteString("[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "] ")
	}
	fmt.Fprintf(&b, "%d/%d nodes on the new root", r.Converted, r.Nodes)
	if len(r.Waiting) > 0 {
		var parts []string
		for _, w := range r.Waiting {
			state := "renewing"
			if w.Status != api.NodeReady {
				state = "unreachable"
			}
			parts = append(parts, fmt.Sprintf("%s (%s) — %s", w.ID, w.Addr, state))
		}
		b.WriteString("; waiting for: " + strings.Join(parts, ", "))
	}
	return b.String()
}
