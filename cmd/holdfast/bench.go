package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/holdfast/holdfast/internal/bench"
)

// benchBinary is the holdfast binary bench runs its daemons from; empty
// means this executable. Tests set it: a test binary is not holdfast.
var benchBinary string

// benchStarted, when set, is called with the PID of every daemon bench
// starts, so that tests can check that none is left behind.
var benchStarted func(pid int)

// setupBench is `holdfast bench`: its flags, its directory, its output
// and exit code. The harness itself is package internal/bench.
func setupBench(c *cli, fs *flag.FlagSet) action {
	format := formatFlag(fs)
	dir := fs.String("dir", "", "keep the cluster's data and logs in `DIR`, which must be empty or not exist (default: a temporary directory, removed at the end)")
	trials := fs.Int("trials", 10, "`N` kills of the leader for the failover figure, and N restarts for unlock to first write")
	quick := fs.Bool("quick", false, "a shorter run: 200 sequential writes, 3 s of concurrent writes, 2,000 secrets for the memory figure")
	workers := fs.Int("workers", 0, "measure instead the figures of `N` simulated workers joined to the cluster (docs/PERFORMANCE.md, section Workers at scale)")
	secrets := fs.Int("secrets", 0, "measure instead the figures of a state of `N` secrets of 1 KiB: memory, secret ls, unlock, failover, snapshot (docs/PERFORMANCE.md, section A large state)")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		if *trials < 1 || *trials > bench.MaxTrials {
			return usagef("--trials must be between 1 and %d, not %d", bench.MaxTrials, *trials)
		}
		if *workers < 0 || *workers > bench.MaxWorkers {
			return usagef("--workers must be between 0 and %d, not %d", bench.MaxWorkers, *workers)
		}
		if *secrets < 0 || *secrets > bench.MaxSecrets {
			return usagef("--secrets must be between 0 and %d, not %d", bench.MaxSecrets, *secrets)
		}
		if *secrets > 0 && *workers > 0 {
			return usagef("--secrets and --workers are separate runs: give one of them")
		}
		binary := benchBinary
		if binary == "" {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the holdfast binary to run the daemons from: %w", err)
			}
			binary = exe
		}
		root, keep := *dir, *dir != ""
		if keep {
			entries, err := os.ReadDir(root)
			switch {
			case errors.Is(err, os.ErrNotExist):
				if err := os.MkdirAll(root, 0o700); err != nil {
					return fmt.Errorf("create --dir: %w", err)
				}
			case err != nil:
				return fmt.Errorf("read --dir: %w", err)
			case len(entries) > 0:
				return usagef("--dir %s is not empty: bench starts a new cluster, so give it an empty or new directory", root)
			}
		} else {
			tmp, err := os.MkdirTemp("", "holdfast-bench-")
			if err != nil {
				return fmt.Errorf("create a directory for the cluster: %w", err)
			}
			root = tmp
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		// The first signal stops the run and the cluster; a second one kills.
		context.AfterFunc(ctx, stop)

		prog := newProgress(c.stderr)
		every := time.Second
		if prog.tty {
			every = 100 * time.Millisecond
		}
		rep, err := bench.Run(ctx, bench.Config{
			Binary: binary, Dir: root, Quick: *quick, Trials: *trials,
			Progress: benchProgress{prog}, ProgressEvery: every,
			Warn:    func(msg string) { fmt.Fprintln(c.stderr, "holdfast: warning: "+msg) },
			Started: benchStarted, Workers: *workers, Secrets: *secrets,
		})
		interrupted := ctx.Err() != nil
		switch {
		case err == nil || interrupted:
			if !keep {
				os.RemoveAll(root)
			}
		case !keep:
			err = fmt.Errorf("%w; the cluster's data and logs are kept in %s", err, root)
		}
		if interrupted {
			return errors.New("interrupted; every daemon bench started is stopped")
		}
		if err != nil {
			return err
		}
		if format.json() {
			return writeJSON(c.stdout, rep)
		}
		return bench.WriteTable(c.stdout, rep)
	}
}

// benchProgress shows the harness's progress as the CLI shows any: a
// line rewritten in place on a terminal, plain lines otherwise.
type benchProgress struct{ p *progress }

func (b benchProgress) Step(msg string) { b.p.step("%s", msg) }
func (b benchProgress) Done()           { b.p.done() }
