package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/testutil"
)

// binary is the holdfast binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "holdfast-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "holdfast")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../cmd/holdfast")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build holdfast:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is one `holdfast daemon` process.
type daemon struct {
	tb     testing.TB
	name   string
	dir    string
	sock   string
	listen string
	log    string
	cmd    *exec.Cmd
	exited chan error
	client *api.Client
	// bin, args and env, when set, replace the binary, add daemon
	// flags, and add to the environment (the crash-point tests).
	bin  string
	args []string
	env  []string
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newDaemonOf starts a daemon of binary bin (empty: the one TestMain
// built) with env added to its environment.
func newDaemonOf(tb testing.TB, name, bin string, env ...string) *daemon {
	tb.Helper()
	return newDaemon(tb, name, func(d *daemon) {
		d.bin = bin
		d.env = append(d.env, env...)
	})
}

// newDaemon starts a daemon of the binary TestMain built; opts adjust it
// before it starts.
func newDaemon(tb testing.TB, name string, opts ...func(*daemon)) *daemon {
	tb.Helper()
	dir := tb.TempDir()
	sockDir, err := os.MkdirTemp("", "hfi")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &daemon{tb: tb, name: name, dir: dir, sock: filepath.Join(sockDir, "s"), listen: freePort(tb), log: filepath.Join(dir, "daemon.log")}
	d.client = api.NewUnixClient(d.sock)
	tb.Cleanup(func() {
		d.kill()
		if tb.Failed() {
			b, _ := os.ReadFile(d.log)
			tb.Logf("---- log of %s ----\n%s", d.name, b)
		}
	})
	for _, o := range opts {
		o(d)
	}
	d.start()
	return d
}

// start runs the daemon and waits for its control socket.
func (d *daemon) start() {
	d.tb.Helper()
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.tb.Fatal(err)
	}
	bin := binary
	if d.bin != "" {
		bin = d.bin
	}
	d.cmd = exec.Command(bin, append([]string{"daemon", "--data-dir", d.dir, "--socket", d.sock, "--listen-addr", d.listen, "--advertise-addr", d.listen, "--gossip-addr", gossipAddrFor(d.listen), "--log-level", "debug"}, d.args...)...)
	if d.env != nil {
		d.cmd.Env = append(os.Environ(), d.env...)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if d.env != nil {
		d.cmd.Env = append(os.Environ(), d.env...)
	}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		d.tb.Fatal(err)
	}
	logf.Close()
	d.exited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(d.cmd, d.exited)
	waitFor(d.tb, 20*time.Second, d.name+" control socket", func() bool {
		select {
		case err := <-d.exited:
			d.exited <- err
			d.tb.Fatalf("%s exited at start: %v", d.name, err)
		default:
		}
		_, err := d.client.Status(context.Background())
		return err == nil
	})
}

// kill sends SIGKILL and reaps the process; a no-op if it is not running.
func (d *daemon) kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
	d.cmd = nil
	d.client.Close()
}

// term sends SIGTERM and waits for a clean exit.
func (d *daemon) term() error {
	if d.cmd == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	err := <-d.exited
	d.cmd = nil
	d.client.Close()
	return err
}

func (d *daemon) running() bool { return d.cmd != nil }

func (d *daemon) status() (*api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.client.Status(ctx)
}

// cli runs the holdfast CLI against this daemon and returns stdout,
// stderr and the exit code.
func (d *daemon) cli(stdin string, args ...string) (string, string, int) {
	d.tb.Helper()
	cmd := exec.Command(binary, append([]string{"--socket", d.sock}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.tb.Fatalf("run holdfast %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// waitFor checks cond at each tick until it holds or timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	testutil.Eventually(tb, timeout, testutil.Waiting(what, cond))
}

// cluster is a set of daemons that form one cluster.
type cluster struct {
	tb      testing.TB
	daemons []*daemon
	init    *api.InitResponse
}

// newCluster starts n daemons, inits the first and joins the rest as
// managers through the CLI.
func newCluster(tb testing.TB, n int) *cluster {
	tb.Helper()
	c := &cluster{tb: tb}
	for i := range n {
		c.daemons = append(c.daemons, newDaemon(tb, fmt.Sprintf("d%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	init, err := c.daemons[0].client.Init(ctx, api.InitRequest{})
	if err != nil {
		tb.Fatalf("init: %v", err)
	}
	c.init = init
	for _, d := range c.daemons[1:] {
		if out, errOut, code := d.cli("", "join", "--token", init.ManagerToken, init.Addr); code != 0 {
			tb.Fatalf("join %s: exit %d: %s%s", d.name, code, out, errOut)
		}
	}
	c.waitHealthy()
	return c
}

// waitHealthy waits until every running daemon agrees on one leader and
// sees every manager reachable.
func (c *cluster) waitHealthy() {
	c.tb.Helper()
	waitFor(c.tb, 30*time.Second, "a healthy cluster", func() bool {
		leader := ""
		for _, d := range c.daemons {
			if !d.running() {
				return false
			}
			st, err := d.status()
			if err != nil || st.Leader.NodeID == "" || (leader != "" && st.Leader.NodeID != leader) || len(st.Managers) != len(c.daemons) {
				return false
			}
			leader = st.Leader.NodeID
			for _, m := range st.Managers {
				if !m.Reachable {
					return false
				}
			}
		}
		return true
	})
}

// leader returns the daemon that leads.
func (c *cluster) leader() *daemon {
	c.tb.Helper()
	var l *daemon
	waitFor(c.tb, 20*time.Second, "a leader", func() bool {
		for _, d := range c.daemons {
			if d.running() {
				if st, err := d.status(); err == nil && st.IsLeader {
					l = d
					return true
				}
			}
		}
		return false
	})
	return l
}

// write makes one acknowledged write through d, retrying on 503 (no leader
// yet, or an outcome the cluster could not promise) until timeout.
func write(ctx context.Context, d *daemon) error {
	for {
		_, err := d.client.RotateJoinToken(ctx, "worker")
		var ae *api.Error
		if err == nil || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
}

// killLeaderAndWrite kills the leader with SIGKILL and measures the time
// until a write through a survivor is acknowledged.
func (c *cluster) killLeaderAndWrite() (*daemon, time.Duration) {
	c.tb.Helper()
	l := c.leader()
	var survivor *daemon
	for _, d := range c.daemons {
		if d != l && d.running() {
			survivor = d
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	l.kill()
	if err := write(ctx, survivor); err != nil {
		c.tb.Fatalf("write through %s after killing the leader %s: %v", survivor.name, l.name, err)
	}
	return l, time.Since(start)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p * float64(len(s)-1))
	return s[i]
}

func apiStatus(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

// gossipAddrFor is a daemon's gossip address: the host of its listen
// address and a free port, so daemons sharing a host do not collide.
func gossipAddrFor(listen string) string {
	host, _, _ := net.SplitHostPort(listen)
	return net.JoinHostPort(host, "0")
}
