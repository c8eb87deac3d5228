package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/raftlog"
)

// benchBinary is the holdfast binary bench runs its daemons from; empty
// means this executable. Tests set it: a test binary is not holdfast.
var benchBinary string

// benchStarted, when set, is called with the PID of every daemon bench
// starts, so that tests can check that none is left behind.
var benchStarted func(pid int)

const (
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

// benchPlan is how much a run measures.
type benchPlan struct {
	seqWrites     int           // sequential writes through the leader
	tputDuration  time.Duration // how long the 64 writers write…
	tputMaxWrites int           // …or until they made this many writes
	trials        int           // failovers, and unlocks
	memSecrets    int           // secrets held when memory is read
	logRounds     int           // rounds of each log store
	logRound      time.Duration // length of one round
	rotations     int           // data-plane key rotations timed
}

func newBenchPlan(quick bool, trials int) benchPlan {
	if quick {
		return benchPlan{seqWrites: 200, tputDuration: 3 * time.Second, tputMaxWrites: 20000, trials: trials,
			memSecrets: 2000, logRounds: 4, logRound: 250 * time.Millisecond, rotations: 1}
	}
	return benchPlan{seqWrites: 1000, tputDuration: 10 * time.Second, tputMaxWrites: 20000, trials: trials,
		memSecrets: 10000, logRounds: 10, logRound: 500 * time.Millisecond, rotations: 3}
}

func setupBench(c *cli, fs *flag.FlagSet) action {
	format := formatFlag(fs)
	dir := fs.String("dir", "", "keep the cluster's data and logs in `DIR`, which must be empty or not exist (default: a temporary directory, removed at the end)")
	trials := fs.Int("trials", 10, "`N` kills of the leader for the failover figure, and N restarts for unlock to first write")
	quick := fs.Bool("quick", false, "a shorter run: 200 sequential writes, 3 s of concurrent writes, 2,000 secrets for the memory figure")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		if *trials < 1 || *trials > 1000 {
			return usagef("--trials must be between 1 and 1000, not %d", *trials)
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

		b := &bench{
			c: c, root: root, binary: binary, plan: newBenchPlan(*quick, *trials),
			quick: *quick, prog: newProgress(c.stderr),
		}
		rep, err := b.run(ctx)
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
		return printBench(c.stdout, rep)
	}
}

// benchReport is what `holdfast bench --format json` prints.
type benchReport struct {
	Time                 string           `json:"time"`
	Quick                bool             `json:"quick"`
	Machine              benchMachine     `json:"machine"`
	Cluster              benchClusterInfo `json:"cluster"`
	SequentialWrite      benchSequential  `json:"sequential_write"`
	ConcurrentWrites     benchConcurrent  `json:"concurrent_writes"`
	Failover             benchTrials      `json:"failover"`
	UnlockToFirstWrite   benchTrials      `json:"unlock_to_first_write"`
	SealedVsPlainLog     benchLog         `json:"sealed_vs_plain_log"`
	ManagerMemory        benchMemory      `json:"manager_memory"`
	DataPlaneKeyRotation benchTrials      `json:"data_plane_key_rotation"`
}

type benchMachine struct {
	CPUModel   string `json:"cpu_model"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

type benchClusterInfo struct {
	Managers int  `json:"managers"`
	Autolock bool `json:"autolock"`
	// Secrets is how many secrets bench created in all.
	Secrets int64 `json:"secrets"`
}

type benchSequential struct {
	Writes      int     `json:"writes"`
	SecretBytes int     `json:"secret_bytes"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	Goal        string  `json:"goal"`
	Met         bool    `json:"met"`
}

type benchConcurrent struct {
	Writers      int     `json:"writers"`
	Writes       int64   `json:"writes"`
	SecretBytes  int     `json:"secret_bytes"`
	Seconds      float64 `json:"seconds"`
	WritesPerSec float64 `json:"writes_per_sec"`
	Goal         string  `json:"goal"`
	Met          bool    `json:"met"`
}

type benchTrials struct {
	Trials   int       `json:"trials"`
	P50Ms    float64   `json:"p50_ms"`
	P99Ms    float64   `json:"p99_ms"`
	TrialsMs []float64 `json:"trials_ms"`
	Goal     string    `json:"goal"`
	Met      bool      `json:"met"`
}

type benchLog struct {
	Rounds         int       `json:"rounds"`
	BatchEntries   int       `json:"batch_entries"`
	EntryBytes     int       `json:"entry_bytes"`
	SealedMBPerSec float64   `json:"sealed_mb_per_sec"`
	PlainMBPerSec  float64   `json:"plain_mb_per_sec"`
	SealedRounds   []float64 `json:"sealed_rounds_mb_per_sec"`
	PlainRounds    []float64 `json:"plain_rounds_mb_per_sec"`
	Ratio          float64   `json:"ratio"`
	Goal           string    `json:"goal"`
	Met            bool      `json:"met"`
}

type benchMemory struct {
	Secrets     int       `json:"secrets"`
	SecretBytes int       `json:"secret_bytes"`
	MaxRSSMiB   float64   `json:"max_rss_mib"`
	RSSMiB      []float64 `json:"rss_mib"`
	Goal        string    `json:"goal"`
	Met         bool      `json:"met"`
}

// bench is one run of `holdfast bench`.
type bench struct {
	c      *cli
	root   string
	binary string
	plan   benchPlan
	quick  bool

	prog     *progress
	lastStep time.Time

	nodes     []*benchNode
	unlockKey string
	data      []byte
	names     atomic.Int64 // numbers the secrets' names
	created   atomic.Int64 // acknowledged creates
}

// run measures every figure. It stops every daemon it started before it
// returns, also on errors and when ctx ends.
func (b *bench) run(ctx context.Context) (*benchReport, error) {
	rep := &benchReport{
		Time:    time.Now().UTC().Format(time.RFC3339),
		Quick:   b.quick,
		Machine: machineInfo(),
		Cluster: benchClusterInfo{Managers: benchManagers, Autolock: true},
	}
	b.data = make([]byte, benchSecretSize)
	_, _ = rand.Read(b.data)

	// The log stores first, alone on the disk.
	if err := b.measureLog(ctx, &rep.SealedVsPlainLog); err != nil {
		return nil, fmt.Errorf("sealed vs plain log: %w", err)
	}
	defer func() {
		b.stopAll()
		b.prog.done()
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
// one is recent: 0.1 s on a terminal, 1 s otherwise. Only the goroutine
// that runs the bench calls it.
func (b *bench) step(force bool, format string, args ...any) {
	every := time.Second
	if b.prog.tty {
		every = 100 * time.Millisecond
	}
	if !force && time.Since(b.lastStep) < every {
		return
	}
	b.lastStep = time.Now()
	b.prog.step(format, args...)
}

// --- the cluster ---

// benchNode is one daemon process of the cluster.
type benchNode struct {
	num                                  int
	dataDir, secretsDir, socket, logPath string
	addr                                 string
	client                               *api.Client
	proc                                 *benchProc // nil when not running
}

// benchProc is one run of a daemon process.
type benchProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
	err    error         // Wait's result; read after exited is closed
}

func (p *benchProc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// startCluster starts the daemons, creates the cluster with autolock on,
// joins the other managers and waits until it is healthy and every
// manager's keys are wrapped (so that a restarted one comes up locked).
func (b *bench) startCluster(ctx context.Context) error {
	addrs, err := freeAddrs(benchManagers)
	if err != nil {
		return err
	}
	for i := 1; i <= benchManagers; i++ {
		n := &benchNode{
			num:        i,
			dataDir:    filepath.Join(b.root, fmt.Sprintf("node-%d", i)),
			secretsDir: filepath.Join(b.root, fmt.Sprintf("node-%d-secrets", i)),
			socket:     filepath.Join(b.root, fmt.Sprintf("node-%d.sock", i)),
			logPath:    filepath.Join(b.root, fmt.Sprintf("node-%d.log", i)),
			addr:       addrs[i-1],
		}
		if len(n.socket) > maxSocketPath {
			return fmt.Errorf("socket path %s is too long for a unix socket (at most %d bytes); use a shorter --dir", n.socket, maxSocketPath)
		}
		n.client = api.NewUnixClient(n.socket)
		b.nodes = append(b.nodes, n)
		b.step(true, "starting manager %d of %d (%s)", i, benchManagers, n.addr)
		if err := b.startNode(ctx, n); err != nil {
			return err
		}
	}
	b.step(true, "creating the cluster on manager 1, with autolock")
	ictx, cancel := context.WithTimeout(ctx, benchStepTimeout)
	created, err := b.nodes[0].client.Init(ictx, api.InitRequest{Autolock: true})
	cancel()
	if err != nil {
		return fmt.Errorf("init manager 1: %w; see %s", err, b.nodes[0].logPath)
	}
	if created.UnlockKey == "" {
		return errors.New("init with autolock returned no unlock key")
	}
	b.unlockKey = created.UnlockKey
	for _, n := range b.nodes[1:] {
		b.step(true, "joining manager %d", n.num)
		jctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		_, err := n.client.Join(jctx, api.JoinRequest{Token: created.ManagerToken, Addr: created.Addr})
		cancel()
		if err != nil {
			return fmt.Errorf("join manager %d: %w; see %s", n.num, err, n.logPath)
		}
	}
	b.step(true, "waiting for %d healthy managers", benchManagers)
	if err := b.waitHealthy(ctx); err != nil {
		return err
	}
	return b.wait(ctx, "every manager's keys wrapped under the unlock key", func(context.Context) (bool, error) {
		for _, n := range b.nodes {
			if !n.wrapped() {
				return false, nil
			}
		}
		return true, nil
	})
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago, all different.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		// Held open until all are chosen, so that no two are the same.
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// startNode starts n's daemon and waits until it answers on its socket.
func (b *bench) startNode(ctx context.Context, n *benchNode) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("manager %d log: %w", n.num, err)
	}
	cmd := exec.Command(b.binary, "daemon", "--data-dir", n.dataDir, "--socket", n.socket,
		"--listen-addr", n.addr, "--advertise-addr", n.addr, "--gossip-addr", "127.0.0.1:0", "--secrets-dir", n.secretsDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = benchSysProcAttr()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start manager %d (%s daemon): %w", n.num, b.binary, err)
	}
	p := &benchProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	n.proc = p
	if benchStarted != nil {
		benchStarted(cmd.Process.Pid)
	}
	return b.wait(ctx, fmt.Sprintf("manager %d to answer on its socket", n.num), func(ctx context.Context) (bool, error) {
		_, err := n.client.Status(ctx)
		return err == nil, nil
	})
}

// kill sends SIGKILL to n's daemon and waits until it is reaped.
func (n *benchNode) kill() {
	if n.proc == nil {
		return
	}
	_ = n.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-n.proc.exited
	n.proc = nil
	n.client.Close()
}

// wrapped reports whether n's DEK file and TLS key are wrapped under the
// unlock key, so that n comes up locked after a restart.
func (n *benchNode) wrapped() bool {
	for _, p := range []string{filepath.Join(n.dataDir, "keys"), filepath.Join(n.dataDir, "certs", "node.key")} {
		b, err := os.ReadFile(p)
		if err != nil || !autolock.IsWrapped(b) {
			return false
		}
	}
	return true
}

// alive returns an error when a daemon that should run has exited.
func (b *bench) alive() error {
	for _, n := range b.nodes {
		if n.proc != nil && n.proc.hasExited() {
			return fmt.Errorf("manager %d exited on its own (%v); see %s", n.num, n.proc.err, n.logPath)
		}
	}
	return nil
}

// wait polls check until it reports done or an error, a daemon exits, ctx
// ends, or benchStepTimeout passes. Each check gets a deadline of its own.
func (b *bench) wait(ctx context.Context, what string, check func(context.Context) (bool, error)) error {
	deadline := time.NewTimer(benchStepTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(benchPollInterval)
	defer tick.Stop()
	for {
		if err := b.alive(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := check(cctx)
		cancel()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %s; see the logs in %s", benchStepTimeout, what, b.root)
		case <-tick.C:
		}
	}
}

// waitHealthy waits until every manager runs, is ready, and sees the same
// leader and all managers as reachable voters.
func (b *bench) waitHealthy(ctx context.Context) error {
	return b.wait(ctx, "a healthy cluster (one leader, every manager reachable)", func(ctx context.Context) (bool, error) {
		leader := ""
		for _, n := range b.nodes {
			if n.proc == nil {
				return false, nil
			}
			st, err := n.client.Status(ctx)
			if err != nil || st.State != api.StateReady || st.Leader.NodeID == "" || len(st.Managers) != benchManagers {
				return false, nil
			}
			if leader != "" && st.Leader.NodeID != leader {
				return false, nil
			}
			leader = st.Leader.NodeID
			for _, m := range st.Managers {
				if !m.Reachable || !m.Voter {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// leader returns the manager that leads.
func (b *bench) leader(ctx context.Context) (*benchNode, error) {
	var l *benchNode
	err := b.wait(ctx, "a leader", func(ctx context.Context) (bool, error) {
		for _, n := range b.nodes {
			if n.proc == nil {
				continue
			}
			if st, err := n.client.Status(ctx); err == nil && st.IsLeader {
				l = n
				return true, nil
			}
		}
		return false, nil
	})
	return l, err
}

// restart starts n again after a kill, unlocks it and waits until the
// cluster is healthy.
func (b *bench) restart(ctx context.Context, n *benchNode) error {
	if err := b.startNode(ctx, n); err != nil {
		return err
	}
	st, err := n.client.Status(ctx)
	if err != nil {
		return fmt.Errorf("manager %d after a restart: %w", n.num, err)
	}
	if st.State == api.StateLocked {
		uctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		_, err := n.client.Unlock(uctx, api.UnlockRequest{Key: b.unlockKey})
		cancel()
		if err != nil {
			return fmt.Errorf("unlock manager %d: %w; see %s", n.num, err, n.logPath)
		}
	}
	return b.waitHealthy(ctx)
}

// stopAll sends SIGTERM to every daemon and waits for each to exit,
// killing those that take longer than benchStopTimeout.
func (b *bench) stopAll() {
	var running []*benchNode
	for _, n := range b.nodes {
		if n.proc != nil {
			running = append(running, n)
		}
	}
	if len(running) == 0 {
		return
	}
	b.step(true, "stopping %d managers", len(running))
	for _, n := range running {
		_ = n.proc.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.NewTimer(benchStopTimeout)
	defer deadline.Stop()
	for _, n := range running {
		select {
		case <-n.proc.exited:
			if n.proc.err != nil {
				b.warn("manager %d did not stop cleanly (%v); see %s", n.num, n.proc.err, n.logPath)
			}
		case <-deadline.C:
			b.warn("manager %d did not stop within %s of SIGTERM; killed it", n.num, benchStopTimeout)
			deadline.Reset(0)
			_ = n.proc.cmd.Process.Signal(syscall.SIGKILL)
			<-n.proc.exited
		}
		n.proc = nil
		n.client.Close()
	}
}

// warn prints a line on stderr that does not end the run.
func (b *bench) warn(format string, args ...any) {
	b.prog.done()
	fmt.Fprintln(b.c.stderr, "holdfast: warning: "+fmt.Sprintf(format, args...))
}

// --- writes ---

// create makes one secret of 1 KiB through cl.
func (b *bench) create(ctx context.Context, cl *api.Client, kind string) error {
	name := fmt.Sprintf("bench-%s-%d", kind, b.names.Add(1))
	if _, err := cl.CreateSecret(ctx, api.SecretCreateRequest{Name: name, Data: b.data}); err != nil {
		return err
	}
	b.created.Add(1)
	return nil
}

// createRetrying makes one acknowledged write through cl, retrying while
// the cluster cannot take it yet: a temporary code (no leader, …), the
// node locked, or unreachable. Each attempt uses a new name, so an attempt whose outcome
// the cluster could not promise does not make the next one a conflict.
func (b *bench) createRetrying(ctx context.Context, cl *api.Client, kind string) error {
	for {
		err := b.create(ctx, cl, kind)
		if err == nil || !retryableWrite(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-time.After(benchRetryInterval):
		}
	}
}

func retryableWrite(err error) bool {
	if errors.Is(err, api.ErrUnreachable) {
		return true
	}
	return api.CodeOf(err).Temporary() || errors.Is(err, api.ErrLocked)
}

// createConcurrently makes secrets with benchWriters writers spread over
// the managers' sockets until max writes are made or, when until is set,
// that time passes (a write started before it still counts). report is
// called with the count now and then. It returns the writes acknowledged
// and the time they took.
func (b *bench) createConcurrently(ctx context.Context, kind string, limit int, until time.Time, report func(done int64, elapsed time.Duration)) (int64, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]*api.Client, benchWriters)
	for i := range clients {
		clients[i] = api.NewUnixClient(b.nodes[i%len(b.nodes)].socket)
		defer clients[i].Close()
	}
	var (
		claimed, done atomic.Int64
		errOnce       sync.Once
		firstErr      error
		wg            sync.WaitGroup
	)
	start := time.Now()
	for i, cl := range clients {
		wg.Go(func() {
			for claimed.Add(1) <= int64(limit) && (until.IsZero() || time.Now().Before(until)) {
				if err := b.create(ctx, cl, kind); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() {
							firstErr = fmt.Errorf("writer %d through manager %d: %w", i, b.nodes[i%len(b.nodes)].num, err)
						})
					}
					cancel()
					return
				}
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			elapsed := time.Since(start)
			if firstErr == nil && ctx.Err() != nil {
				firstErr = ctx.Err()
			}
			return done.Load(), elapsed, firstErr
		case <-tick.C:
			report(done.Load(), time.Since(start))
		}
	}
}

// --- the figures ---

// measureSequential: 1 KiB secrets created one at a time through the
// leader's control socket.
func (b *bench) measureSequential(ctx context.Context, out *benchSequential) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	n := b.plan.seqWrites
	lat := make([]time.Duration, 0, n)
	b.step(true, "measuring sequential writes… 0/%d", n)
	for i := range n {
		start := time.Now()
		if err := b.create(ctx, leader.client, "seq"); err != nil {
			return fmt.Errorf("write %d through the leader (manager %d): %w", i+1, leader.num, err)
		}
		lat = append(lat, time.Since(start))
		b.step(i+1 == n, "measuring sequential writes… %d/%d", i+1, n)
	}
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	*out = benchSequential{
		Writes: n, SecretBytes: benchSecretSize, P50Ms: ms(p50), P99Ms: ms(p99),
		Goal: "p50 ≤ 1.0 ms", Met: p50 <= goalSeqP50,
	}
	return nil
}

// measureConcurrent: 64 writers over the three managers' sockets.
func (b *bench) measureConcurrent(ctx context.Context, out *benchConcurrent) error {
	dur, limit := b.plan.tputDuration, b.plan.tputMaxWrites
	b.step(true, "measuring %d concurrent writers… 0.0 s of %.0f s", benchWriters, dur.Seconds())
	done, elapsed, err := b.createConcurrently(ctx, "conc", limit, time.Now().Add(dur), func(done int64, el time.Duration) {
		b.step(false, "measuring %d concurrent writers… %.1f s of %.0f s, %s writes", benchWriters, el.Seconds(), dur.Seconds(), thousands(done))
	})
	if err != nil {
		return err
	}
	b.step(true, "measuring %d concurrent writers… %s writes in %.1f s", benchWriters, thousands(done), elapsed.Seconds())
	rate := float64(done) / elapsed.Seconds()
	*out = benchConcurrent{
		Writers: benchWriters, Writes: done, SecretBytes: benchSecretSize,
		Seconds: round(elapsed.Seconds(), 3), WritesPerSec: round(rate, 1),
		Goal: "≥ 8,000 writes/s", Met: rate >= goalWritesPerSec,
	}
	return nil
}

// measureFailover: kill -9 of the leader to the next acknowledged write
// through a survivor; the killed manager is restarted, unlocked and the
// cluster healthy again before the next trial.
func (b *bench) measureFailover(ctx context.Context, out *benchTrials) error {
	var times []time.Duration
	for t := 1; t <= b.plan.trials; t++ {
		b.step(true, "measuring failover… trial %d/%d: killing the leader", t, b.plan.trials)
		leader, err := b.leader(ctx)
		if err != nil {
			return err
		}
		var survivor *benchNode
		for _, n := range b.nodes {
			if n != leader && n.proc != nil {
				survivor = n
				break
			}
		}
		wctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		start := time.Now()
		leader.kill()
		err = b.createRetrying(wctx, survivor.client, "failover")
		took := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("trial %d: write through manager %d after killing the leader (manager %d): %w", t, survivor.num, leader.num, err)
		}
		times = append(times, took)
		b.step(true, "measuring failover… trial %d/%d: %.3f s; restarting manager %d", t, b.plan.trials, took.Seconds(), leader.num)
		if err := b.restart(ctx, leader); err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
	}
	p50, p99 := percentile(times, 0.50), percentile(times, 0.99)
	*out = benchTrials{
		Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times),
		Goal: "p50 ≤ 1.0 s, p99 ≤ 2.0 s", Met: p50 <= goalFailoverP50 && p99 <= goalFailoverP99,
	}
	return nil
}

// measureUnlock: a follower is killed and started again, comes up locked;
// the figure is the time from the unlock call to the first acknowledged
// write through it.
func (b *bench) measureUnlock(ctx context.Context, out *benchTrials) error {
	var times []time.Duration
	for t := 1; t <= b.plan.trials; t++ {
		leader, err := b.leader(ctx)
		if err != nil {
			return err
		}
		var followers []*benchNode
		for _, n := range b.nodes {
			if n != leader {
				followers = append(followers, n)
			}
		}
		n := followers[t%len(followers)]
		b.step(true, "measuring unlock to first write… trial %d/%d: restarting manager %d", t, b.plan.trials, n.num)
		n.kill()
		if err := b.startNode(ctx, n); err != nil {
			return err
		}
		st, err := n.client.Status(ctx)
		if err != nil {
			return fmt.Errorf("manager %d after a restart: %w", n.num, err)
		}
		if st.State != api.StateLocked {
			return fmt.Errorf("manager %d came up %s after a restart, not locked, though autolock is on; see %s", n.num, st.State, n.logPath)
		}
		wctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		start := time.Now()
		_, err = n.client.Unlock(wctx, api.UnlockRequest{Key: b.unlockKey})
		if err == nil {
			err = b.createRetrying(wctx, n.client, "unlock")
		}
		took := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("trial %d: manager %d: %w; see %s", t, n.num, err, n.logPath)
		}
		times = append(times, took)
		b.step(true, "measuring unlock to first write… trial %d/%d: %.3f s", t, b.plan.trials, took.Seconds())
		if err := b.waitHealthy(ctx); err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
	}
	p50, p99 := percentile(times, 0.50), percentile(times, 0.99)
	*out = benchTrials{
		Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times),
		Goal: "p50 ≤ 0.5 s", Met: p50 <= goalUnlockP50,
	}
	return nil
}

// measureKeyRotation sets the shortest rotation interval and times each
// rotation from the moment the leader made the new keys (their creation
// time) to the moment the last manager's ipsec keyring stream delivered
// them, as a local data plane would get them.
func (b *bench) measureKeyRotation(ctx context.Context, out *benchTrials) error {
	type arrival struct {
		node int
		at   time.Time
		ring *api.Keyring
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	arrivals := make(chan arrival, 64)
	for _, n := range b.nodes {
		go func() {
			_ = n.client.WatchKeyring(wctx, "ipsec", func(k *api.Keyring) error {
				select {
				case arrivals <- arrival{n.num, time.Now(), k}:
				case <-wctx.Done():
				}
				return nil
			})
		}()
	}
	interval := benchKeyRotation.String()
	if _, err := b.nodes[0].client.Update(ctx, api.UpdateRequest{KeyRotation: &interval}); err != nil {
		return fmt.Errorf("set --key-rotation %s: %w", interval, err)
	}
	defer func() {
		def := (12 * time.Hour).String()
		_, _ = b.nodes[0].client.Update(context.WithoutCancel(ctx), api.UpdateRequest{KeyRotation: &def})
	}()
	newest := func(k *api.Keyring) api.Key { return k.Keys[len(k.Keys)-1] }
	seen := map[int]uint64{} // manager → newest Lamport time delivered
	var times []time.Duration
	deadline := time.NewTimer(benchKeyRotation*time.Duration(b.plan.rotations+1) + benchStepTimeout)
	defer deadline.Stop()
	var start uint64
	for len(times) < b.plan.rotations {
		b.step(true, "measuring data-plane key rotation… %d/%d (every %s)", len(times)+1, b.plan.rotations, interval)
		var reached map[int]time.Time
		var created time.Time
		var target uint64
		for reached == nil || len(reached) < len(b.nodes) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				return fmt.Errorf("rotations did not reach every manager in time")
			case a := <-arrivals:
				l := newest(a.ring).Lamport
				if l > seen[a.node] {
					seen[a.node] = l
				}
				if start == 0 {
					// The first keyring each stream sends is the current
					// one: time only the rotations after it.
					start = l
				}
				if target == 0 && l > start {
					target, created, reached = l, newest(a.ring).CreatedAt, map[int]time.Time{}
				}
				if target != 0 && l >= target {
					if _, ok := reached[a.node]; !ok {
						reached[a.node] = a.at
					}
				}
			}
		}
		var last time.Time
		for _, at := range reached {
			if at.After(last) {
				last = at
			}
		}
		times = append(times, last.Sub(created))
		start = target
	}
	p50, p99 := percentile(times, 0.50), percentile(times, 0.99)
	*out = benchTrials{Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times), Goal: "none (issue 6 asks for the figure)", Met: true}
	return nil
}

// measureMemory creates the secrets concurrently, then reads each
// manager's resident set size.
func (b *bench) measureMemory(ctx context.Context, out *benchMemory) error {
	n := b.plan.memSecrets
	b.step(true, "creating %s secrets of 1 KiB for the memory figure… 0/%s", thousands(int64(n)), thousands(int64(n)))
	done, _, err := b.createConcurrently(ctx, "mem", n, time.Time{}, func(done int64, _ time.Duration) {
		b.step(false, "creating %s secrets of 1 KiB for the memory figure… %s/%s", thousands(int64(n)), thousands(done), thousands(int64(n)))
	})
	if err != nil {
		return err
	}
	b.step(true, "creating %s secrets of 1 KiB for the memory figure… %s/%s; reading VmRSS", thousands(int64(n)), thousands(done), thousands(int64(n)))
	*out = benchMemory{Secrets: int(done), SecretBytes: benchSecretSize, Goal: "≤ 150 MiB"}
	for _, node := range b.nodes {
		rss, err := readRSS(node.proc.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("manager %d: %w", node.num, err)
		}
		mib := round(float64(rss)/(1<<20), 1)
		out.RSSMiB = append(out.RSSMiB, mib)
		out.MaxRSSMiB = max(out.MaxRSSMiB, mib)
	}
	out.Met = out.MaxRSSMiB <= goalManagerRSSMiB
	return nil
}

// readRSS returns the resident set size of process pid, in bytes, from
// /proc/PID/status.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read its memory use: %w", err)
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds "VmRSS: N kB" in the text of /proc/PID/status.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line in /proc/PID/status")
}

// measureLog stores batches of 64 entries of 1 KiB, with fsync, through
// holdfast's log store (sealed, its write-ahead file, bolt behind it) and
// through plain raft-boltdb, in alternating rounds, as raftlog's
// BenchmarkStoreLogs does.
func (b *bench) measureLog(ctx context.Context, out *benchLog) error {
	dir := filepath.Join(b.root, "log-bench")
	defer os.RemoveAll(dir)
	sealed, err := raftlog.Open(filepath.Join(dir, "sealed"), raftlog.Options{
		ClusterID: "holdfast-bench", Keys: raftlog.NewKeyring(seal.NewKey()),
	})
	if err != nil {
		return err
	}
	defer sealed.Close()
	if err := os.MkdirAll(filepath.Join(dir, "plain"), 0o700); err != nil {
		return err
	}
	plain, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "plain", raftlog.DBFile)})
	if err != nil {
		return err
	}
	defer plain.Close()

	data := make([]byte, benchSecretSize)
	for i := range data {
		data[i] = byte(i)
	}
	stores := []struct {
		store raft.LogStore
		next  uint64
		mbps  []float64
	}{{store: sealed, next: 1}, {store: plain, next: 1}}
	// A few batches each first, unmeasured: the files' first pages.
	for i := range stores {
		if _, err := storeRound(ctx, stores[i].store, &stores[i].next, data, 0, 8); err != nil {
			return err
		}
	}
	rounds := b.plan.logRounds
	for r := range rounds {
		b.step(true, "measuring sealed vs plain log… round %d/%d", r+1, rounds)
		// Alternate which store goes first.
		for k := range stores {
			s := &stores[(r+k)%len(stores)]
			mbps, err := storeRound(ctx, s.store, &s.next, data, b.plan.logRound, 0)
			if err != nil {
				return err
			}
			s.mbps = append(s.mbps, round(mbps, 2))
		}
	}
	sm, pm := median(stores[0].mbps), median(stores[1].mbps)
	ratio := 0.0
	if pm > 0 {
		ratio = sm / pm
	}
	*out = benchLog{
		Rounds: rounds, BatchEntries: benchLogBatch, EntryBytes: benchSecretSize,
		SealedMBPerSec: round(sm, 2), PlainMBPerSec: round(pm, 2),
		SealedRounds: stores[0].mbps, PlainRounds: stores[1].mbps,
		Ratio: round(ratio, 3), Goal: "≥ 0.95", Met: ratio >= goalSealedPlain,
	}
	return nil
}

// storeRound stores batches of benchLogBatch entries in s, numbered from
// *next, for dur or, when dur is 0, batches times, and returns the MB/s
// (10⁶ bytes of entry data a second).
func storeRound(ctx context.Context, s raft.LogStore, next *uint64, data []byte, dur time.Duration, batches int) (float64, error) {
	start := time.Now()
	n := 0
	for dur > 0 && time.Since(start) < dur || dur == 0 && n < batches {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		logs := make([]*raft.Log, benchLogBatch)
		for i := range logs {
			logs[i] = &raft.Log{Index: *next, Term: 1, Type: raft.LogCommand, Data: data}
			*next++
		}
		if err := s.StoreLogs(logs); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n*benchLogBatch*len(data)) / time.Since(start).Seconds() / 1e6, nil
}

// --- helpers ---

// percentile returns the nearest-rank p-th percentile of ds (0 < p ≤ 1).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func msList(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}

// round rounds x to places decimal places.
func round(x float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x*p, 'f', 0, 64), 64)
	return v / p
}

// thousands prints n with commas: 20,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func machineInfo() benchMachine {
	return benchMachine{
		CPUModel:   cpuModel(),
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}
}

// cpuModel is the CPU's name from /proc/cpuinfo; "unknown" without one.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	return parseCPUModel(f)
}

func parseCPUModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "model name", "Model", "Hardware", "cpu model":
			if v := strings.TrimSpace(value); v != "" {
				return v
			}
		}
	}
	return "unknown"
}

// printBench prints the figures as a table.
func printBench(w io.Writer, r *benchReport) error {
	seq, conc, fo, un, lg, mem, kr := r.SequentialWrite, r.ConcurrentWrites, r.Failover, r.UnlockToFirstWrite, r.SealedVsPlainLog, r.ManagerMemory, r.DataPlaneKeyRotation
	secs := func(msv float64) string { return fmt.Sprintf("%.3f s", msv/1000) }
	tw := newTable(w)
	fmt.Fprint(tw, "FIGURE\tVALUE\tGOAL\tMET\n")
	rows := [][4]string{
		{fmt.Sprintf("sequential write p50 (1 KiB, %s writes)", thousands(int64(seq.Writes))), fmt.Sprintf("%.3f ms", seq.P50Ms), "≤ 1.0 ms", yesNo(seq.Met)},
		{"sequential write p99", fmt.Sprintf("%.3f ms", seq.P99Ms), "-", "-"},
		{fmt.Sprintf("%d concurrent writers (%s writes)", conc.Writers, thousands(conc.Writes)), fmt.Sprintf("%s writes/s", thousands(int64(conc.WritesPerSec+0.5))), "≥ 8,000 writes/s", yesNo(conc.Met)},
		{fmt.Sprintf("failover p50 (kill -9 of the leader, %d trials)", fo.Trials), secs(fo.P50Ms), "≤ 1.0 s", yesNo(fo.P50Ms <= ms(goalFailoverP50))},
		{"failover p99", secs(fo.P99Ms), "≤ 2.0 s", yesNo(fo.P99Ms <= ms(goalFailoverP99))},
		{fmt.Sprintf("unlock to first write p50 (%d trials)", un.Trials), secs(un.P50Ms), "≤ 0.5 s", yesNo(un.Met)},
		{"unlock to first write p99", secs(un.P99Ms), "-", "-"},
		{"sealed log store / plain raft-boltdb", fmt.Sprintf("%.3f (%.1f / %.1f MB/s)", lg.Ratio, lg.SealedMBPerSec, lg.PlainMBPerSec), "≥ 0.95", yesNo(lg.Met)},
		{fmt.Sprintf("manager memory (%s secrets of 1 KiB)", thousands(int64(mem.Secrets))), fmt.Sprintf("%.1f MiB max RSS", mem.MaxRSSMiB), "≤ 150 MiB", yesNo(mem.Met)},
		{fmt.Sprintf("data-plane key rotation to all %d managers p50 (%d rotations)", r.Cluster.Managers, kr.Trials), secs(kr.P50Ms), "-", "-"},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row[0], row[1], row[2], row[3])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	m := r.Machine
	quick := ""
	if r.Quick {
		quick = " (--quick)"
	}
	_, err := fmt.Fprintf(w, "\n%d managers on 127.0.0.1, autolock on%s; %s, %d CPUs, GOMAXPROCS %d, %s %s/%s; %s\n",
		r.Cluster.Managers, quick, m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OS, m.Arch, r.Time)
	return err
}
