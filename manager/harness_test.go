package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/testutil"
)

// testNode is one in-process node on real TCP, TLS and bolt files.
type testNode struct {
	t      *testing.T
	name   string
	dir    string
	cfg    Config
	node   *Node
	cancel context.CancelFunc
	done   chan error
	client *api.Client
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestNode makes a node with its own data dir and a short socket path
// (unix socket paths are limited to 108 bytes). opts change its config
// before it starts.
func newTestNode(t *testing.T, name string, opts ...func(*Config)) *testNode {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "hf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	tn := &testNode{t: t, name: name, dir: dir, logs: &syncBuffer{}}
	tn.cfg = DefaultConfig(dir)
	tn.cfg.ListenAddr = "127.0.0.1:0"
	tn.cfg.GossipAddr = "127.0.0.1:0"
	tn.cfg.gossipTune = fastGossip
	tn.cfg.SocketPath = filepath.Join(sockDir, "s")
	tn.cfg.SecretsDir = filepath.Join(sockDir, "secrets") // outside the data dir, which canary scans read
	tn.cfg.Logger = slog.New(slog.NewTextHandler(tn.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, o := range opts {
		o(&tn.cfg)
	}
	tn.start()
	t.Cleanup(func() {
		tn.stop()
		if t.Failed() {
			t.Logf("---- logs of %s ----\n%s", tn.name, tn.logs.String())
		}
	})
	return tn
}

// start runs the node and waits until its control socket answers.
func (tn *testNode) start() {
	tn.t.Helper()
	n, err := New(tn.cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.node, tn.cancel, tn.done = n, cancel, make(chan error, 1)
	go func() { tn.done <- n.Run(ctx) }()
	tn.client = api.NewUnixClient(tn.cfg.SocketPath)
	eventually(tn.t, 10*time.Second, tn.name+" control socket", func() bool {
		select {
		case err := <-tn.done:
			tn.cancel = nil // Run has returned: stop has nothing to wait for
			tn.t.Fatalf("%s stopped: %v", tn.name, err)
		default:
		}
		_, err := tn.client.Status(context.Background())
		return err == nil
	})
}

// stop shuts the node down gracefully; a no-op when stopped.
func (tn *testNode) stop() {
	if tn.cancel == nil {
		return
	}
	tn.cancel()
	if err := <-tn.done; err != nil {
		tn.t.Errorf("%s: Run: %v", tn.name, err)
	}
	tn.client.Close()
	tn.cancel = nil
}

func (tn *testNode) status() *api.Status {
	tn.t.Helper()
	st, err := tn.client.Status(context.Background())
	if err != nil {
		tn.t.Fatalf("%s status: %v", tn.name, err)
	}
	return st
}

// eventually waits until cond holds (testutil.Eventually); it fails the
// test or benchmark when timeout passes first.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	testutil.Eventually(tb, timeout, testutil.Waiting(what, cond))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiStatus returns err's HTTP status, or 0.
func apiStatus(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// testCluster is managers[0] (which ran init) plus the nodes that joined.
type testCluster struct {
	t        *testing.T
	init     *api.InitResponse
	managers []*testNode
	workers  []*testNode
}

func newCluster(t *testing.T, managers, workers int) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	first := newTestNode(t, "m0")
	init, err := first.client.Init(ctxT(t), api.InitRequest{})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	c.init = init
	c.managers = append(c.managers, first)
	for i := 1; i < managers; i++ {
		c.managers = append(c.managers, c.join(fmt.Sprintf("m%d", i), init.ManagerToken))
	}
	for i := 0; i < workers; i++ {
		c.workers = append(c.workers, c.join(fmt.Sprintf("w%d", i), init.WorkerToken))
	}
	return c
}

func (c *testCluster) join(name, token string) *testNode {
	c.t.Helper()
	tn := newTestNode(c.t, name)
	if _, err := tn.client.Join(ctxT(c.t), api.JoinRequest{Token: token, Addr: c.init.Addr}); err != nil {
		c.t.Fatalf("join %s: %v", name, err)
	}
	return tn
}

// leader waits for a leader among the running managers and returns it.
func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var l *testNode
	eventually(c.t, 10*time.Second, "a leader", func() bool {
		for _, m := range c.managers {
			if m.cancel != nil && m.status().IsLeader {
				l = m
				return true
			}
		}
		return false
	})
	return l
}

// followers returns the running managers other than l.
func (c *testCluster) followers(l *testNode) []*testNode {
	var out []*testNode
	for _, m := range c.managers {
		if m != l && m.cancel != nil {
			out = append(out, m)
		}
	}
	return out
}

// halt stops a node the way a crash would: no leadership hand-over, raft
// and the port closed at once.
func (tn *testNode) halt() {
	tn.node.mu.Lock()
	tn.node.stop(false)
	tn.node.mu.Unlock()
	tn.stop()
}

// fastGossip shortens memberlist's timings for tests on loopback, keeping
// them loose enough for a busy machine running -race.
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 300 * time.Millisecond
	c.ProbeTimeout = 200 * time.Millisecond
	c.GossipInterval = 100 * time.Millisecond
	c.SuspicionMult = 3
	c.TCPTimeout = 2 * time.Second
	c.PushPullInterval = 5 * time.Second
	c.GossipToTheDeadTime = 5 * time.Second
}
