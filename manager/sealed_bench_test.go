package manager

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// BenchmarkClusterWrites measures the write throughput of a 3-manager
// cluster (real TCP, TLS and bolt files) with its raft logs sealed, and
// with plain raft-boltdb, in the same run: 64 writers rotate join tokens
// through the three managers' control sockets, b.N writes in all. The
// goal (issue 3) is sealed ≥ 0.95 × plain.
func BenchmarkClusterWrites(b *testing.B) {
	const writers = 64
	for _, bc := range []struct {
		name  string
		plain bool
	}{{"sealed", false}, {"plain", true}} {
		c := startBenchCluster(b, 3, bc.plain)
		clients := make([]*api.Client, writers)
		for i := range clients {
			clients[i] = api.NewUnixClient(c[i%len(c)].cfg.SocketPath)
		}
		b.Run(bc.name, func(b *testing.B) {
			var next atomic.Int64
			errs := make(chan error, writers)
			var wg sync.WaitGroup
			b.ResetTimer()
			for _, cl := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := cl.RotateJoinToken(context.Background(), "worker"); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatalf("write: %v", err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
		for _, cl := range clients {
			cl.Close()
		}
		for _, n := range c {
			n.stop(b)
		}
	}
}

// benchNode is a node run for a benchmark: like testNode, but for any
// testing.TB, silent, and with plainLog settable before it starts.
type benchNode struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan error
	client *api.Client
}

// startBenchCluster starts n managers: the first runs init, the others join.
func startBenchCluster(tb testing.TB, n int, plain bool) []*benchNode {
	tb.Helper()
	var nodes []*benchNode
	first := startBenchNode(tb, plain)
	init, err := first.client.Init(context.Background(), api.InitRequest{})
	if err != nil {
		tb.Fatalf("init: %v", err)
	}
	nodes = append(nodes, first)
	for range n - 1 {
		bn := startBenchNode(tb, plain)
		if _, err := bn.client.Join(context.Background(), api.JoinRequest{Token: init.ManagerToken, Addr: init.Addr}); err != nil {
			tb.Fatalf("join: %v", err)
		}
		nodes = append(nodes, bn)
	}
	eventually(tb, 10*time.Second, fmt.Sprintf("%d voters", n), func() bool {
		st, err := first.client.Status(context.Background())
		return err == nil && len(st.Managers) == n && st.Leader.NodeID != ""
	})
	// The benchmark measures what it says: a sealed node has a key file,
	// a plain one none.
	for _, bn := range nodes {
		_, err := os.Stat(filepath.Join(bn.cfg.DataDir, "keys"))
		if got := err == nil; got == plain {
			tb.Fatalf("plainLog=%v: key file present: got %v; want %v", plain, got, !plain)
		}
	}
	return nodes
}

func startBenchNode(tb testing.TB, plain bool) *benchNode {
	tb.Helper()
	sockDir, err := os.MkdirTemp("", "hfb")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg := DefaultConfig(tb.TempDir())
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.SocketPath = filepath.Join(sockDir, "s")
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.plainLog = plain
	n, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bn := &benchNode{cfg: cfg, cancel: cancel, done: make(chan error, 1), client: api.NewUnixClient(cfg.SocketPath)}
	go func() { bn.done <- n.Run(ctx) }()
	tb.Cleanup(func() { bn.stop(tb) })
	eventually(tb, 10*time.Second, "control socket", func() bool {
		select {
		case err := <-bn.done:
			bn.cancel()
			bn.cancel = nil
			tb.Fatalf("node stopped: %v", err)
		default:
		}
		_, err := bn.client.Status(context.Background())
		return err == nil
	})
	return bn
}

// stop shuts the node down; a no-op when stopped.
func (bn *benchNode) stop(tb testing.TB) {
	if bn.cancel == nil {
		return
	}
	bn.cancel()
	bn.cancel = nil
	if err := <-bn.done; err != nil {
		tb.Errorf("Run: %v", err)
	}
	bn.client.Close()
}
