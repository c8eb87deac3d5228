package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/manager"
)

const (
	maxDevManagers = 7
	// devStepTimeout bounds each stage of bringing the cluster up.
	devStepTimeout = 2 * time.Minute
	// devPollInterval is how often dev asks the nodes whether a stage is done.
	devPollInterval = 50 * time.Millisecond
	// maxSocketPath is the longest unix socket path Linux takes.
	maxSocketPath = 107
)

func setupDev(c *cli, fs *flag.FlagSet) action {
	managers := fs.Int("managers", 3, "how many managers to run, 1 to 7")
	autolock := fs.Bool("autolock", false, "create the cluster with autolock on")
	dir := fs.String("dir", "", "keep the nodes' data, secrets, sockets and logs in `DIR` (default: a new temporary directory, removed on exit)")
	metrics := fs.String("metrics-addr", "", "serve each node's metrics and health over plain HTTP, node 1 on `HOST:PORT`, node 2 on the next port, and so on (port 0: free ports); default: off")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		if *managers < 1 || *managers > maxDevManagers {
			return usagef("--managers must be between 1 and %d, not %d", maxDevManagers, *managers)
		}
		metricsAddrs, err := devMetricsAddrs(*metrics, *managers)
		if err != nil {
			return err
		}
		root := *dir
		if root == "" {
			tmp, err := os.MkdirTemp("", "holdfast-dev-")
			if err != nil {
				return fmt.Errorf("create a directory for the cluster: %w", err)
			}
			defer os.RemoveAll(tmp)
			root = tmp
		} else if err := os.MkdirAll(root, 0o700); err != nil {
			return fmt.Errorf("create --dir: %w", err)
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		// The first signal starts a clean stop; a second one kills.
		context.AfterFunc(ctx, stop)
		d := &devCluster{c: c, root: root, autolock: *autolock, metricsAddrs: metricsAddrs, progress: newProgress(c.stderr)}
		return d.run(ctx, *managers)
	}
}

// devCluster is the cluster `holdfast dev` runs in this process.
type devCluster struct {
	c        *cli
	root     string
	autolock bool
	// metricsAddrs are the nodes' metrics addresses; nil when off.
	metricsAddrs []string
	progress     *progress
	nodes        []*devNode
	// exited receives each node whose Run returned.
	exited chan *devNode
}

// devNode is one manager of a devCluster.
type devNode struct {
	num                              int
	dataDir, secretsDir, socket, log string
	client                           *api.Client
	node                             *manager.Node
	logFile                          *os.File
	cancel                           context.CancelFunc
	done                             chan struct{}
	err                              error // Run's result; read after done is closed
	id, addr                         string
}

// run brings up n managers, reports them, and serves until ctx ends; then
// it stops them all.
func (d *devCluster) run(ctx context.Context, n int) (err error) {
	d.exited = make(chan *devNode, n)
	defer func() {
		if stopErr := d.stop(); err == nil {
			err = stopErr
		}
	}()
	if err := d.start(ctx, n); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: just stop
		}
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case node := <-d.exited:
		return fmt.Errorf("node %d stopped on its own: %v; see %s", node.num, node.err, node.log)
	}
}

// start starts the nodes, creates the cluster and waits until every node
// sees a leader and all n managers.
func (d *devCluster) start(ctx context.Context, n int) error {
	for i := 1; i <= n; i++ {
		d.progress.step("starting node %d of %d", i, n)
		node, err := d.startNode(i)
		if err != nil {
			return err
		}
		d.nodes = append(d.nodes, node)
		if err := d.wait(ctx, fmt.Sprintf("node %d to answer on its socket", i), func(ctx context.Context) (bool, error) {
			_, err := node.client.Status(ctx)
			return err == nil, nil
		}); err != nil {
			return err
		}
	}
	first := d.nodes[0]
	created, err := d.initFirst(ctx, first)
	if err != nil {
		return err
	}
	for _, node := range d.nodes[1:] {
		st, err := node.client.Status(ctx)
		if err != nil {
			return fmt.Errorf("node %d: %v", node.num, err)
		}
		if st.State != api.StateUninitialized {
			continue // resumed from --dir
		}
		d.progress.step("joining node %d to the cluster", node.num)
		jctx, cancel := context.WithTimeout(ctx, devStepTimeout)
		_, err = node.client.Join(jctx, api.JoinRequest{Token: created.ManagerToken, Addr: created.Addr})
		cancel()
		if err != nil {
			return fmt.Errorf("join node %d: %v; see %s", node.num, err, node.log)
		}
	}
	d.progress.step("waiting for all %d managers to agree on a leader and hold the data-plane keys", n)
	if err := d.wait(ctx, "a leader, all managers and the data-plane keys on every node", func(ctx context.Context) (bool, error) {
		for _, node := range d.nodes {
			st, err := node.client.Status(ctx)
			if err != nil || st.State != api.StateReady || st.Leader.NodeID == "" || voters(st) < n {
				return false, nil
			}
			// The leader makes the keyrings just after the cluster
			// forms; 'keys ls' on a node without them is an error.
			if keys, err := node.client.Keys(ctx); err != nil || len(keys) == 0 {
				return false, nil
			}
			node.id, node.addr = st.NodeID, st.Addr
		}
		return true, nil
	}); err != nil {
		return err
	}
	d.progress.done()
	return d.printReady(created)
}

// initFirst creates the cluster on node 1, or, when it resumed a cluster
// from --dir, reads the join tokens.
func (d *devCluster) initFirst(ctx context.Context, node *devNode) (*api.InitResponse, error) {
	st, err := node.client.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("node 1: %v", err)
	}
	switch st.State {
	case api.StateUninitialized:
		d.progress.step("creating the cluster on node 1")
		ictx, cancel := context.WithTimeout(ctx, devStepTimeout)
		defer cancel()
		created, err := node.client.Init(ictx, api.InitRequest{Autolock: d.autolock})
		if err != nil {
			return nil, fmt.Errorf("init node 1: %v", err)
		}
		return created, nil
	case api.StateReady, api.StateCatchingUp:
		resumed := &api.InitResponse{ClusterID: st.ClusterID, NodeID: st.NodeID, Addr: st.Addr}
		for _, t := range []struct {
			role ca.Role
			dst  *string
		}{{ca.RoleWorker, &resumed.WorkerToken}, {ca.RoleManager, &resumed.ManagerToken}} {
			tok, err := node.client.JoinToken(ctx, t.role)
			if err != nil {
				return nil, fmt.Errorf("node 1: %s join token: %v", t.role, err)
			}
			*t.dst = tok.Token
		}
		return resumed, nil
	default:
		return nil, fmt.Errorf("node 1 is %s; unlock it with 'holdfast --socket %s unlock', or use a new --dir", st.State, shellQuote(node.socket))
	}
}

func voters(st *api.Status) int {
	n := 0
	for _, m := range st.Managers {
		if m.Voter {
			n++
		}
	}
	return n
}

// startNode starts node i of the cluster in its own goroutine.
func (d *devCluster) startNode(i int) (*devNode, error) {
	node := &devNode{
		num:        i,
		dataDir:    filepath.Join(d.root, fmt.Sprintf("node-%d", i)),
		secretsDir: filepath.Join(d.root, fmt.Sprintf("node-%d-secrets", i)),
		socket:     filepath.Join(d.root, fmt.Sprintf("node-%d.sock", i)),
		log:        filepath.Join(d.root, fmt.Sprintf("node-%d.log", i)),
		done:       make(chan struct{}),
	}
	if len(node.socket) > maxSocketPath {
		return nil, fmt.Errorf("socket path %s is too long for a unix socket (at most %d bytes); use a shorter --dir", node.socket, maxSocketPath)
	}
	f, err := os.OpenFile(node.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node %d log: %w", i, err)
	}
	cfg := manager.DefaultConfig(node.dataDir)
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.SocketPath = node.socket
	cfg.SecretsDir = node.secretsDir
	cfg.Logger = slog.New(slog.NewTextHandler(f, nil)).With("node", i)
	if d.metricsAddrs != nil {
		cfg.MetricsAddr = d.metricsAddrs[i-1]
	}
	m, err := manager.New(cfg)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("node %d: %w", i, err)
	}
	node.logFile = f
	node.node = m
	node.client = api.NewUnixClient(node.socket)
	ctx, cancel := context.WithCancel(context.Background())
	node.cancel = cancel
	go func() {
		defer close(node.done)
		node.err = m.Run(ctx)
		d.exited <- node
	}()
	return node, nil
}

// wait polls check until it reports done, ctx ends, a node stops, or
// devStepTimeout passes. Each check gets a short deadline of its own.
func (d *devCluster) wait(ctx context.Context, what string, check func(context.Context) (bool, error)) error {
	deadline := time.NewTimer(devStepTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(devPollInterval)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := check(cctx)
		cancel()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case node := <-d.exited:
			d.exited <- node // leave it for run and stop to see
			return fmt.Errorf("node %d stopped while waiting for %s: %v; see %s", node.num, what, node.err, node.log)
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %s; see the logs in %s", devStepTimeout, what, d.root)
		case <-tick.C:
		}
	}
}

// printReady prints the nodes, how to reach them, and the join tokens.
func (d *devCluster) printReady(created *api.InitResponse) error {
	w := d.c.stdout
	tw := newTable(w)
	fmt.Fprint(tw, "NODE\tID\tADDR\tSOCKET\tSECRETS\tLOG\n")
	for _, n := range d.nodes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", n.num, n.id, n.addr, n.socket, n.secretsDir, n.log)
	}
	tw.Flush()
	if d.metricsAddrs != nil {
		fmt.Fprintln(w)
		for _, n := range d.nodes {
			fmt.Fprintf(w, "Node %d metrics: http://%s/metrics  health: http://%s/v1/health\n", n.num, n.node.MetricsAddr(), n.node.MetricsAddr())
		}
	}
	fmt.Fprintf(w, "\nexport HOLDFAST_SOCKET=%s\n\n", shellQuote(d.nodes[0].socket))
	tw = newTable(w)
	fmt.Fprintf(tw, "Worker join token:\t%s\n", created.WorkerToken)
	fmt.Fprintf(tw, "Manager join token:\t%s\n", created.ManagerToken)
	tw.Flush()
	if err := printUnlockKey(w, created.UnlockKey); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "\ncluster ready\n")
	return err
}

// stop stops every node and waits for each Run to return.
func (d *devCluster) stop() error {
	if len(d.nodes) == 0 {
		return nil
	}
	d.progress.step("stopping %d nodes", len(d.nodes))
	for _, n := range d.nodes {
		n.cancel()
	}
	var errs []error
	for _, n := range d.nodes {
		<-n.done
		n.client.Close()
		if n.err != nil {
			errs = append(errs, fmt.Errorf("node %d: %v", n.num, n.err))
		}
		if err := n.logFile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node %d log: %v", n.num, err))
		}
	}
	d.progress.done()
	fmt.Fprintln(d.c.stdout, "cluster stopped")
	return errors.Join(errs...)
}

// devMetricsAddrs gives node i of n the metrics address addr with its port
// plus i-1 (port 0 stays 0: each node picks a free port); nil when addr is
// empty.
func devMetricsAddrs(addr string, n int) ([]string, error) {
	if addr == "" {
		return nil, nil
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("bad --metrics-addr %q: want HOST:PORT", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port+n-1 > 65535 {
		return nil, usagef("bad --metrics-addr %q: want a port from 0 to %d for %d nodes", addr, 65536-n, n)
	}
	out := make([]string, n)
	for i := range out {
		p := port
		if port != 0 {
			p += i
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(p))
	}
	return out, nil
}
