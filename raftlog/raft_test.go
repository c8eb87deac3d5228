package raftlog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM is a replicated list of strings.
type listFSM struct {
	mu    sync.Mutex
	items []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = append(f.items, string(l.Data))
	return nil
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &listSnap{items: slices.Clone(f.items)}, nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var items []string
	if err := json.NewDecoder(rc).Decode(&items); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = items
	return nil
}

func (f *listFSM) get() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.items)
}

type listSnap struct{ items []string }

func (s *listSnap) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.items); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *listSnap) Release() {}

type node struct {
	r     *raft.Raft
	fsm   *listFSM
	store *Store
	snaps *SnapshotStore
}

// startNode starts a one-node raft over dir and waits until it leads and
// has applied everything in its log.
func startNode(t *testing.T, dir string, keys *Keyring) *node {
	t.Helper()
	opts := testOpts(t, keys)
	store := openStore(t, dir, opts)
	snaps, err := NewSnapshotStore(dir, 2, opts)
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.TrailingLogs = 4
	conf.SnapshotThreshold = 1 << 20
	conf.SnapshotInterval = time.Hour
	conf.Logger = hclog.NewNullLogger()
	leaderCh := make(chan bool, 8)
	conf.NotifyCh = leaderCh
	addr, trans := raft.NewInmemTransport("n1")
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		t.Fatal(err)
	}
	if !existing {
		err := raft.BootstrapCluster(conf, store, store, snaps, trans, raft.Configuration{
			Servers: []raft.Server{{ID: conf.LocalID, Address: addr}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	fsm := &listFSM{}
	cache, err := raft.NewLogCache(64, store)
	if err != nil {
		t.Fatal(err)
	}
	r, err := raft.NewRaft(conf, fsm, cache, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{r: r, fsm: fsm, store: store, snaps: snaps}
	t.Cleanup(func() { n.shutdown(t) })
	select {
	case <-leaderCh:
	case <-time.After(10 * time.Second):
		t.Fatal("no leader after 10s")
	}
	if err := r.Barrier(10 * time.Second).Error(); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	return n
}

func (n *node) shutdown(t *testing.T) {
	if n.r == nil {
		return
	}
	if err := n.r.Shutdown().Error(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	n.r = nil
	if err := n.store.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func (n *node) apply(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if err := n.r.Apply([]byte(c), 10*time.Second).Error(); err != nil {
			t.Fatalf("Apply(%q): %v", c, err)
		}
	}
}

const marker = "HOLDFAST-CANARY-7f3a9c"

func TestRaftRoundTripAndCanary(t *testing.T) {
	dir := t.TempDir()
	keys, _ := newKeyring()
	n := startNode(t, dir, keys)
	var want []string
	for i := range 10 {
		want = append(want, marker+"-before-snapshot-"+string(rune('a'+i)))
	}
	n.apply(t, want...)
	if err := n.r.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	after := []string{marker + "-after-snapshot-1", marker + "-after-snapshot-2"}
	n.apply(t, after...)
	want = append(want, after...)
	if got := n.fsm.get(); !slices.Equal(got, want) {
		t.Fatalf("FSM = %q; want %q", got, want)
	}
	metas, err := n.snaps.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("List = %v, %v; want one snapshot", metas, err)
	}
	n.shutdown(t)

	// Canary: the marker and its base64 appear nowhere on disk.
	needles := [][]byte{[]byte(marker)}
	for pad := range 3 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
			s := enc.EncodeToString(append(make([]byte, pad), marker...))
			// Drop the characters that depend on the neighbouring bytes.
			needles = append(needles, []byte(s[4*((pad+2)/3)+1:len(s)-4]))
		}
	}
	files := dirFiles(t, dir)
	if _, ok := files[filepath.Join(dir, DBFile)]; !ok || len(files) < 2 {
		t.Fatalf("expected raft.db and a snapshot, got %d files", len(files))
	}
	for path, b := range files {
		for _, nd := range needles {
			if bytes.Contains(b, nd) {
				t.Fatalf("%s contains %q", path, nd)
			}
		}
	}

	// Restart over the same directory: state restored from snapshot + log.
	n2 := startNode(t, dir, keys)
	if got := n2.fsm.get(); !slices.Equal(got, want) {
		t.Fatalf("after restart FSM = %q; want %q", got, want)
	}
}
