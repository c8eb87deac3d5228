package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/keyfiles"
)

// --- the cluster ---

// daemon is one daemon process of the cluster.
type daemon struct {
	num                                  int
	dataDir, secretsDir, socket, logPath string
	addr                                 string
	client                               *api.Client
	proc                                 *process // nil when not running
}

// process is one run of a daemon process.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
	err    error         // Wait's result; read after exited is closed
}

func (p *process) hasExited() bool {
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
		n := &daemon{
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
func (b *bench) startNode(ctx context.Context, n *daemon) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("manager %d log: %w", n.num, err)
	}
	cmd := exec.Command(b.cfg.Binary, "daemon", "--data-dir", n.dataDir, "--socket", n.socket,
		"--listen-addr", n.addr, "--advertise-addr", n.addr, "--gossip-addr", "127.0.0.1:0", "--secrets-dir", n.secretsDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = benchSysProcAttr()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start manager %d (%s daemon): %w", n.num, b.cfg.Binary, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	n.proc = p
	if b.cfg.Started != nil {
		b.cfg.Started(cmd.Process.Pid)
	}
	return b.wait(ctx, fmt.Sprintf("manager %d to answer on its socket", n.num), func(ctx context.Context) (bool, error) {
		_, err := n.client.Status(ctx)
		return err == nil, nil
	})
}

// kill sends SIGKILL to n's daemon and waits until it is reaped.
func (n *daemon) kill() {
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
func (n *daemon) wrapped() bool {
	_, ok := keyfiles.WrappedKEKID(n.dataDir)
	return ok
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
func (b *bench) leader(ctx context.Context) (*daemon, error) {
	var l *daemon
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
func (b *bench) restart(ctx context.Context, n *daemon) error {
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
	var running []*daemon
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
