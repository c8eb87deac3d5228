package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Config is one run of the harness.
type Config struct {
	// Binary is the holdfast binary the daemons run from ("holdfast
	// daemon …").
	Binary string
	// Dir holds the cluster's data dirs, sockets and logs, and the log
	// stores' files while they are measured. It must exist; the caller
	// makes it (empty) and removes it.
	Dir string
	// Quick is a shorter run: 200 sequential writes, 3 s of concurrent
	// writes, 2,000 secrets for the memory figure, one key rotation.
	Quick bool
	// Trials is how many kills of the leader the failover figure takes,
	// and how many restarts the unlock figure; 1 to MaxTrials.
	Trials int
	// Progress, if set, is told what the run is doing, at most every
	// ProgressEvery apart from the steps that always report.
	Progress      Progress
	ProgressEvery time.Duration
	// Warn, if set, is told of a problem that does not end the run (a
	// daemon that did not stop cleanly).
	Warn func(msg string)
	// Started, if set, is called with the PID of every daemon the run
	// starts, so that tests can check that none is left behind.
	Started func(pid int)
	// Workers, when positive, makes the run measure the figures of N
	// simulated workers (issue 21) instead of the others; 0 to MaxWorkers.
	Workers int
	// Secrets, when positive, makes the run measure instead the figures
	// of a state of N secrets of 1 KiB (issue 21); 0 to MaxSecrets.
	Secrets int
}

// MaxWorkers bounds Config.Workers.
const MaxWorkers = 10000

// MaxTrials bounds Config.Trials.
const MaxTrials = 1000

// Progress shows a run's progress: one line per step.
type Progress interface {
	// Step reports what the run does now.
	Step(msg string)
	// Done ends the progress display before other output (a warning, the
	// figures), e.g. clears a progress line on a terminal.
	Done()
}

// Validate checks that the config names a binary and a directory, and
// a number of trials in range.
func (c Config) Validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("no holdfast binary to run the daemons from"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("no directory for the cluster"))
	}
	if c.Trials < 1 || c.Trials > MaxTrials {
		errs = append(errs, fmt.Errorf("trials must be between 1 and %d, not %d", MaxTrials, c.Trials))
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		errs = append(errs, fmt.Errorf("workers must be between 0 and %d, not %d", MaxWorkers, c.Workers))
	}
	if c.Secrets < 0 || c.Secrets > MaxSecrets {
		errs = append(errs, fmt.Errorf("secrets must be between 0 and %d, not %d", MaxSecrets, c.Secrets))
	}
	if c.Secrets > 0 && c.Workers > 0 {
		errs = append(errs, errors.New("workers and secrets are separate runs: give one of them"))
	}
	return errors.Join(errs...)
}

type noProgress struct{}

func (noProgress) Step(string) {}
func (noProgress) Done()       {}

// Run starts three daemons of cfg.Binary on loopback in cfg.Dir, with
// autolock on, and measures every figure: the log stores first, alone on
// the disk, then memory, sequential and concurrent writes, failover,
// unlock to first write and data-plane key rotation. It stops every
// daemon it started before it returns, also on an error and when ctx
// ends (then it returns ctx's error or one wrapping it). On an error the
// data dirs and logs are left in cfg.Dir for the caller to keep.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if cfg.Progress == nil {
		cfg.Progress = noProgress{}
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	b := &bench{cfg: cfg, root: cfg.Dir, plan: newPlan(cfg.Quick, cfg.Trials)}
	if cfg.Workers > 0 {
		return b.runWorkers(ctx)
	}
	if cfg.Secrets > 0 {
		return b.runState(ctx)
	}
	return b.run(ctx)
}

const (
	// maxSocketPath is the longest unix socket path the kernel takes
	// (sun_path holds 108 bytes with the terminating NUL).
	maxSocketPath = 107

	benchManagers   = 3
	benchWriters    = 64
	benchSecretSize = 1 << 10
	// benchLogBatch is how many entries one StoreLogs call stores, as in
	// raftlog's BenchmarkStoreLogs.
	benchLogBatch = 64
	// benchStepTimeout bounds each wait: a node answering, a healthy
	// cluster, one write after a failover or an unlock.
	benchStepTimeout = time.Minute
	// benchPollInterval is how often bench asks whether a wait is over.
	benchPollInterval = 20 * time.Millisecond
	// benchRetryInterval is the pause between attempts at a write that the
	// cluster cannot take yet (no leader, a node still starting): it
	// bounds the resolution of the failover and unlock figures.
	benchRetryInterval = 5 * time.Millisecond
	// benchStopTimeout is how long a daemon gets to stop after SIGTERM
	// before it is killed.
	benchStopTimeout = 20 * time.Second
	// benchKeyRotation is the shortest rotation interval a cluster takes;
	// bench sets it to time rotations.
	benchKeyRotation = 10 * time.Second
)

// The goals of issue 9, for this 2-core machine.
const (
	goalSeqP50        = time.Millisecond
	goalWritesPerSec  = 8000
	goalFailoverP50   = time.Second
	goalFailoverP99   = 2 * time.Second
	goalUnlockP50     = 500 * time.Millisecond
	goalSealedPlain   = 0.95
	goalManagerRSSMiB = 150
)

// runPlan is how much a run measures.
type runPlan struct {
	seqWrites     int           // sequential writes through the leader
	tputDuration  time.Duration // how long the 64 writers write…
	tputMaxWrites int           // …or until they made this many writes
	trials        int           // failovers, and unlocks
	memSecrets    int           // secrets held when memory is read
	logRounds     int           // rounds of each log store
	logRound      time.Duration // length of one round
	rotations     int           // data-plane key rotations timed
}

func newPlan(quick bool, trials int) runPlan {
	if quick {
		return runPlan{seqWrites: 200, tputDuration: 3 * time.Second, tputMaxWrites: 20000, trials: trials,
			memSecrets: 2000, logRounds: 4, logRound: 250 * time.Millisecond, rotations: 1}
	}
	return runPlan{seqWrites: 1000, tputDuration: 10 * time.Second, tputMaxWrites: 20000, trials: trials,
		memSecrets: 10000, logRounds: 10, logRound: 500 * time.Millisecond, rotations: 3}
}

// bench is one run.
type bench struct {
	cfg  Config
	root string
	plan runPlan

	lastStep time.Time

	nodes     []*daemon
	unlockKey string
	data      []byte
	names     atomic.Int64 // numbers the secrets' names
	created   atomic.Int64 // acknowledged creates
}

// run measures every figure. It stops every daemon it started before it
// returns, also on errors and when ctx ends.
func (b *bench) run(ctx context.Context) (*Report, error) {
	rep := &Report{
		Time:    time.Now().UTC().Format(time.RFC3339),
		Quick:   b.cfg.Quick,
		Machine: machineInfo(),
		Cluster: ClusterInfo{Managers: benchManagers, Autolock: true},
	}
	b.data = make([]byte, benchSecretSize)
	_, _ = rand.Read(b.data)

	// The log stores first, alone on the disk.
	if err := b.measureLog(ctx, &rep.SealedVsPlainLog); err != nil {
		return nil, fmt.Errorf("sealed vs plain log: %w", err)
	}
	defer func() {
		b.stopAll()
		b.cfg.Progress.Done()
	}()
	if err := b.startCluster(ctx); err != nil {
		return nil, err
	}
	// Memory first, with exactly the secrets it names; the other figures
	// then run on a cluster that holds them.
	if err := b.measureMemory(ctx, &rep.ManagerMemory); err != nil {
		return nil, fmt.Errorf("manager memory: %w", err)
	}
	if err := b.measureSequential(ctx, &rep.SequentialWrite); err != nil {
		return nil, fmt.Errorf("sequential writes: %w", err)
	}
	if err := b.measureConcurrent(ctx, &rep.ConcurrentWrites); err != nil {
		return nil, fmt.Errorf("concurrent writes: %w", err)
	}
	if err := b.measureFailover(ctx, &rep.Failover); err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	if err := b.measureUnlock(ctx, &rep.UnlockToFirstWrite); err != nil {
		return nil, fmt.Errorf("unlock to first write: %w", err)
	}
	if err := b.measureKeyRotation(ctx, &rep.DataPlaneKeyRotation); err != nil {
		return nil, fmt.Errorf("data-plane key rotation: %w", err)
	}
	rep.Cluster.Secrets = b.created.Load()
	return rep, nil
}

// step reports progress. Unless force, it skips the report when the last
// one is more recent than Config.ProgressEvery. Only the goroutine that
// runs the bench calls it.
func (b *bench) step(force bool, format string, args ...any) {
	if !force && time.Since(b.lastStep) < b.cfg.ProgressEvery {
		return
	}
	b.lastStep = time.Now()
	b.cfg.Progress.Step(fmt.Sprintf(format, args...))
}

// warn reports a problem that does not end the run.
func (b *bench) warn(format string, args ...any) {
	b.cfg.Progress.Done()
	b.cfg.Warn(fmt.Sprintf(format, args...))
}
