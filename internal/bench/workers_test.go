package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// simWorkers is the simulator test's N: enough for the fan-out to matter,
// small enough for a loaded 2-core machine.
const simWorkers = 150

// TestWorkerSimulator runs the simulator against three real daemons and
// checks that it does what worker daemons do: every simulated worker
// joined with a certificate of its own (for its own key, naming it, as a
// worker) and the cluster lists it as a worker it hears from; a secret
// granted to one worker reaches that worker, with its data, and no other;
// a data-plane key rotation reaches every worker.
func TestWorkerSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three daemons and joins 150 simulated workers")
	}
	bin := filepath.Join(t.TempDir(), "holdfast")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/holdfast").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A short directory: the daemons' unix sockets live in it.
	dir, err := os.MkdirTemp("", "hfsim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var mu sync.Mutex
	var pids []int
	b := &bench{root: dir, cfg: Config{
		Binary: bin, Dir: dir, Trials: 1, Quick: true, Progress: noProgress{},
		Warn:    func(msg string) { t.Log(msg) },
		Started: func(pid int) { mu.Lock(); pids = append(pids, pid); mu.Unlock() },
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	defer func() {
		b.stopAll()
		mu.Lock()
		defer mu.Unlock()
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				t.Errorf("daemon %d still runs", pid)
			}
		}
	}()
	if err := b.startCluster(ctx); err != nil {
		t.Fatal(err)
	}
	f, _, err := b.joinFleet(ctx, simWorkers)
	if err != nil {
		t.Fatal(err)
	}
	defer f.stop()
	if err := b.waitAll(ctx, f, benchStepTimeout, "every worker's first view", func(st *workerState) bool { return st.views > 0 }); err != nil {
		t.Fatal(err)
	}

	t.Run("own certificates, listed as workers", func(t *testing.T) {
		// A manager lists as ready the workers whose polls it serves:
		// ask each.
		listed := map[string]api.Node{}
		for _, m := range b.nodes {
			nodes, err := m.client.Nodes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				if prev, ok := listed[n.ID]; !ok || prev.Status != api.NodeReady {
					listed[n.ID] = n
				}
			}
		}
		keys, serials := map[string]bool{}, map[string]bool{}
		for _, w := range f.workers {
			st := w.snapshot()
			creds := w.creds.Load()
			leaf := creds.Cert.Leaf
			id, err := ca.IdentityOf(leaf)
			if err != nil || id.NodeID != st.nodeID || id.Role != ca.RoleWorker {
				t.Errorf("worker %d: certificate names %+v (%v); want worker %s", w.num, id, err, st.nodeID)
			}
			pub := leaf.PublicKey.(*ecdsa.PublicKey)
			if !creds.Cert.PrivateKey.(*ecdsa.PrivateKey).PublicKey.Equal(pub) {
				t.Errorf("worker %d: its certificate is not for its key", w.num)
			}
			k, _ := pub.ECDH()
			if keys[string(k.Bytes())] || serials[leaf.SerialNumber.String()] {
				t.Errorf("worker %d shares a key or a certificate with another", w.num)
			}
			keys[string(k.Bytes())], serials[leaf.SerialNumber.String()] = true, true
			n, ok := listed[st.nodeID]
			switch {
			case !ok:
				t.Errorf("worker %d (%s) is not in the cluster's node list", w.num, st.nodeID)
			case n.Role != ca.RoleWorker:
				t.Errorf("worker %d is listed as a %s; want worker", w.num, n.Role)
			case n.Status != api.NodeReady:
				t.Errorf("worker %d is listed %s by every manager; want %s by one (its polls are heard)", w.num, n.Status, api.NodeReady)
			}
		}
	})

	t.Run("a granted secret reaches its worker only", func(t *testing.T) {
		data := []byte("for one worker only")
		id, err := b.nodes[1].client.CreateSecret(ctx, api.SecretCreateRequest{Name: "sim-grant", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		to := f.workers[simWorkers/2]
		if err := b.nodes[2].client.GrantSecret(ctx, id.ID, to.snapshot().nodeID); err != nil {
			t.Fatal(err)
		}
		one := &fleet{workers: []*simWorker{to}}
		if err := b.waitAll(ctx, one, benchStepTimeout, "the secret at its worker", func(st *workerState) bool {
			s, ok := st.have[id.ID]
			return ok && bytes.Equal(s.Data, data)
		}); err != nil {
			t.Fatal(err)
		}
		for _, w := range f.workers {
			w.mu.Lock()
			_, has := w.have[id.ID]
			w.mu.Unlock()
			if w != to && has {
				t.Errorf("worker %d holds a secret granted to worker %d", w.num, to.num)
			}
		}
	})

	t.Run("a key rotation reaches every worker", func(t *testing.T) {
		cl := b.nodes[0].client
		old, err := b.keyAgedForRotation(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range f.workers {
			if got := w.snapshot().ipsec; got != old.Lamport {
				t.Fatalf("worker %d holds ipsec key %d before the rotation; want the cluster's %d", w.num, got, old.Lamport)
			}
		}
		if err := rotateKeysNow(ctx, cl); err != nil {
			t.Fatal(err)
		}
		err = b.waitAll(ctx, f, benchStepTimeout, "the new key at every worker", func(st *workerState) bool { return st.ipsec > old.Lamport })
		if rerr := restoreKeyRotation(ctx, cl); rerr != nil {
			t.Error(rerr)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime 250 and stime 50
	// ticks are 3 s.
	got, err := parseStatCPU("4242 (hold fast) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1 2 3")
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	if _, err := parseStatCPU("4242 (holdfast) S 1"); err == nil {
		t.Error("parseStatCPU of a short line: no error")
	}
}

func TestWriteWorkerTable(t *testing.T) {
	rep := &Report{
		Time: "2026-01-02T03:04:05Z", Machine: Machine{CPUModel: "Test CPU", NumCPU: 2, GOMAXPROCS: 2, GoVersion: "go1.26", OS: "linux", Arch: "amd64"},
		Cluster: ClusterInfo{Managers: 3, Autolock: true},
		Workers: &WorkerFigures{
			Workers: 1000, JoinAllSec: 12.5, FollowingAllSec: 13, RSSMiB: []float64{100, 90, 80}, CPUPercent: []float64{12, 3, 2}, IdleWindowSec: 10,
			SeqNone: Sequential{P50Ms: 2}, SeqN: Sequential{P50Ms: 2.2}, ConcNone: Concurrent{Writers: 64, WritesPerSec: 1000}, ConcN: Concurrent{Writers: 64, WritesPerSec: 500},
			Grant:       Trials{Trials: 20, P50Ms: 30, P99Ms: 1500},
			KeyRotation: Trials{Trials: 1, P50Ms: 100, P99Ms: 900, Met: true}, KeyRotationAllMs: []float64{950},
			Done: []string{"writes with no workers", "join", "idle managers", "writes with workers", "grants", "key rotation"},
			Err:  "failover: boom",
		},
	}
	var out bytes.Buffer
	if err := WriteTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"N = 1,000 simulated workers",
		"12.500 s (0 retried, 0 orphans removed)",
		"100.0 / 90.0 / 80.0 MiB",
		"12.0 / 3.0 / 2.0 % of a core",
		"2.000 → 2.200 ms (+10 %)",
		"1,000 → 500 writes/s (-50 %)",
		"1.500 s (p50 0.030 s)",
		"stopped early: failover: boom",
		"Test CPU, 2 CPUs",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "kill -9") || strings.Contains(out.String(), "sequential write p50 (1 KiB") {
		t.Errorf("the table shows figures the run did not measure:\n%s", out.String())
	}
}

// TestRunRefusesBadWorkers: a number of workers out of range starts
// nothing.
func TestRunRefusesBadWorkers(t *testing.T) {
	for _, n := range []int{-1, MaxWorkers + 1} {
		started := 0
		rep, err := Run(t.Context(), Config{Binary: "holdfast", Dir: t.TempDir(), Trials: 1, Workers: n, Started: func(int) { started++ }})
		if rep != nil || err == nil || !strings.Contains(err.Error(), "workers must be between 0 and 10000") || started != 0 {
			t.Errorf("Run with %d workers = %v, %v (%d daemons started); want an error about the range and none", n, rep, err, started)
		}
	}
}
