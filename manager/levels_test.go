package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/secrets"
)

func atLevel(l int) func(*Config) { return func(c *Config) { c.Level = l } }

// mixedCluster is m0 at level, which created the cluster, and m1 and m2
// at this build's level, which joined it (a cluster half way through an
// upgrade), with one of m1 and m2 in the lead.
func mixedCluster(t *testing.T, level int, opts ...func(*Config)) (c *testCluster, low, leader *testNode) {
	t.Helper()
	c = &testCluster{t: t}
	low = newTestNode(t, "m0", append(opts, atLevel(level))...)
	init, err := low.client.Init(ctxT(t), api.InitRequest{})
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	c.init = init
	c.managers = append(c.managers, low)
	for i := 1; i < 3; i++ {
		c.managers = append(c.managers, c.join(fmt.Sprintf("m%d", i), init.ManagerToken))
	}
	eventually(t, 30*time.Second, "a full-level leader", func() bool {
		for _, m := range c.managers[1:] {
			if m.status().IsLeader {
				leader = m
				return true
			}
		}
		if low.status().IsLeader {
			// Hand over (again, if an election gave it back).
			_ = low.node.current().rn().r.LeadershipTransfer().Error()
		}
		return false
	})
	return c, low, leader
}

// entriesAfter returns the command entries in tn's raft log after index.
func entriesAfter(t *testing.T, tn *testNode, index uint64) [][]byte {
	t.Helper()
	rn := tn.node.current().rn()
	last, err := rn.logs.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := index + 1; i <= last; i++ {
		var l raft.Log
		if err := rn.logs.GetLog(i, &l); err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		if l.Type == raft.LogCommand {
			out = append(out, l.Data)
		}
	}
	return out
}

// sameState waits until every running manager has applied the same
// index, at or past the leader's last one, and holds the same state
// there. The leader may commit more meanwhile (node.level records), so it
// compares again until they agree or time runs out.
func sameState(t *testing.T, c *testCluster) {
	t.Helper()
	l := c.leader()
	want := l.node.current().rn().r.LastIndex()
	differ := "not every manager has applied index " + fmt.Sprint(want)
	same := func() bool {
		var ref []byte
		var refIndex uint64
		for i, m := range c.managers {
			data, index, err := m.node.current().rn().fsm.SnapshotData()
			if err != nil || index < want || (i > 0 && index != refIndex) {
				return false
			}
			// The document's index is checked above; compare the state.
			data = data[bytes.Index(data, []byte(`"state":`)):]
			if i == 0 {
				ref, refIndex = data, index
			} else if !bytes.Equal(data, ref) {
				differ = fmt.Sprintf("%s's state differs from %s's at index %d", m.name, c.managers[0].name, index)
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(20 * time.Second)
	for !same() {
		if time.Now().After(deadline) {
			t.Fatal(differ)
		}
		select {
		case <-l.node.current().rn().fsm.Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func secretCreate(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fsm.Encode(&fsm.SecretCreate{CreateCmd: secrets.CreateCmd{ID: "id-" + name, Name: name, Data: []byte("v-" + name), CreatedAt: time.Now().UTC()}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The leader's encodings follow the cluster version: with a level 2
// manager in the cluster, writes that arrive together go as one entry
// each and never as a batch; once it runs this build's level, as one
// batch entry.
func TestLeaderProposesWhatEveryManagerCanApply(t *testing.T) {
	c, low, l := mixedCluster(t, fsm.Level2)
	eventually(t, 10*time.Second, "cluster version 2 on the leader", func() bool { return l.status().ClusterVersion == fsm.Level2 })
	rn := l.node.current().rn()
	start := rn.r.LastIndex()
	for i, err := range rn.prop.apply([][]byte{secretCreate(t, "a"), secretCreate(t, "b"), secretCreate(t, "c")}) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// And under load, through every manager.
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Go(func() {
			m := c.managers[w%len(c.managers)]
			for i := range 4 {
				if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: fmt.Sprintf("s-%d-%d", w, i), Data: []byte("x")}); err != nil {
					t.Errorf("create through %s: %v", m.name, err)
				}
			}
		})
	}
	wg.Wait()
	creates := 0
	for _, e := range entriesAfter(t, l, start) {
		if fsm.IsBatch(e) {
			t.Fatal("the leader proposed a batch entry at cluster version 2")
		}
		if fsm.Type(uint16(e[1])<<8|uint16(e[2])) == fsm.TypeSecretCreate {
			creates++
			if e[3] != 2 {
				t.Errorf("secret.create at version %d; want 2", e[3])
			}
		}
	}
	if creates != 3+12*4 {
		t.Errorf("%d secret.create entries; want %d, one for each", creates, 3+12*4)
	}
	if st := low.status(); st.State != api.StateReady {
		t.Fatalf("the level 2 manager is %s (%+v)", st.State, st.NeedsUpgrade)
	}
	sameState(t, c)

	// Upgrade m0: the same data dir, this build's level.
	low.stop()
	low.cfg.Level = 0
	low.start()
	l = c.leader()
	rn = l.node.current().rn()
	eventually(t, 20*time.Second, "the cluster version to rise", func() bool { return l.status().ClusterVersion == fsm.CurrentLevel })
	eventually(t, 20*time.Second, "every manager's level recorded", func() bool {
		nodes, err := l.client.Nodes(ctxT(t))
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.Level != fsm.CurrentLevel {
				return false
			}
		}
		return true
	})
	start = rn.r.LastIndex()
	for i, err := range rn.prop.apply([][]byte{secretCreate(t, "d"), secretCreate(t, "e"), secretCreate(t, "f")}) {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	batches := 0
	for _, e := range entriesAfter(t, l, start) {
		if fsm.IsBatch(e) {
			batches++
		}
	}
	if batches != 1 {
		t.Errorf("%d batch entries for three writes proposed together; want 1", batches)
	}
	sameState(t, c)
}

// A manager that meets an entry it cannot apply stops there: state
// needs-upgrade, health 503, no reads, an error log line naming the
// command; the others go on. Restarted on a build that knows the entry,
// it applies it and everything after, and holds the same state.
func TestNeedsUpgradeStopsAManagerUntilItIsUpgraded(t *testing.T) {
	c, low, l := mixedCluster(t, fsm.Level2, withMetrics)
	rn := l.node.current().rn()
	// What this build's leader never proposes while m2 is at level 2:
	// forced through raft, as a newer build's leader would.
	entry, err := fsm.EncodeBatch([][]byte{secretCreate(t, "in-batch-1"), secretCreate(t, "in-batch-2")})
	if err != nil {
		t.Fatal(err)
	}
	f := rn.r.Apply(entry, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	stopAt := f.Index()
	// Writes after it: m0 applies none of them.
	for i := range 3 {
		if _, err := l.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: fmt.Sprintf("after-%d", i), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "m0 to report needs-upgrade", func() bool { return low.status().State == api.StateNeedsUpgrade })
	st := low.status()
	if u := st.NeedsUpgrade; u == nil || u.Index != stopAt || u.Command != "batch" || u.Version != 1 {
		t.Errorf("needs_upgrade = %+v; want index %d, batch version 1", st.NeedsUpgrade, stopAt)
	}
	if st.Raft.AppliedIndex >= stopAt {
		t.Errorf("applied index %d; want it before %d, the entry it cannot apply", st.Raft.AppliedIndex, stopAt)
	}
	low.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) {
		for _, name := range []string{"in-batch-1", "after-0", "after-2"} {
			if _, ok := s.Secrets.Get(name); ok {
				t.Errorf("m0 applied %s, at or after the entry it cannot apply", name)
			}
		}
	})
	h, err := low.client.Health(ctxT(t))
	if err != nil || h.Status != api.HealthNeedsUpgrade || h.HTTPStatus() != http.StatusServiceUnavailable {
		t.Errorf("health: %+v, %v; want needs-upgrade, 503", h, err)
	}
	if _, err := low.client.Nodes(ctxT(t)); apiStatus(err) != http.StatusServiceUnavailable || !errors.Is(err, api.ErrNeedsUpgrade) {
		t.Errorf("a read on m0: got %v; want 503 needs upgrade", err)
	}
	if _, err := low.node.apis.node.Self(ctxT(t), api.Peer{NodeID: "w1", Role: roleWorker}, 0); apiStatus(err) != http.StatusServiceUnavailable {
		t.Errorf("a worker following m0: got %v; want 503, so that it asks another manager", err)
	}
	if logs := low.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "command=batch") || !strings.Contains(logs, "version=1") {
		t.Errorf("no error log line naming the command and version:\n%s", logs)
	}
	fams := scrape(t, low.node.MetricsAddr())
	for name, want := range map[string]float64{"holdfast_needs_upgrade": 1, "holdfast_level": fsm.Level2, "holdfast_cluster_version": fsm.Level2} {
		if got := mustValue(t, fams, name); got != want {
			t.Errorf("%s: got %v; want %v", name, got, want)
		}
	}
	for _, m := range c.managers[1:] {
		if st := m.status(); st.State != api.StateReady {
			t.Errorf("%s is %s", m.name, st.State)
		}
	}

	low.stop()
	low.cfg.Level = 0
	low.start()
	eventually(t, 20*time.Second, "m0 ready again", func() bool { return low.status().State == api.StateReady })
	sameState(t, c)
	var has bool
	low.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) { _, has = s.Secrets.Get("in-batch-2") })
	if !has {
		t.Error("the upgraded manager lacks a secret of the entry it had stopped at")
	}
}

// A manager whose build is below the cluster version is refused at join;
// a worker's level does not matter.
func TestJoinRefusesAManagerBelowTheClusterVersion(t *testing.T) {
	c := newCluster(t, 1, 0)
	eventually(t, 10*time.Second, "cluster version", func() bool { return c.managers[0].status().ClusterVersion == fsm.CurrentLevel })
	old := newTestNode(t, "old", atLevel(fsm.Level3))
	_, err := old.client.Join(ctxT(t), api.JoinRequest{Token: c.init.ManagerToken, Addr: c.init.Addr})
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), fmt.Sprintf("level 3, below the cluster version %d", fsm.CurrentLevel)) {
		t.Fatalf("join at level 3: got %v; want 409 naming both levels", err)
	}
	if st := old.status(); st.State != api.StateUninitialized {
		t.Errorf("the refused node is %s", st.State)
	}
	w := newTestNode(t, "w", atLevel(fsm.Level3))
	if _, err := w.client.Join(ctxT(t), api.JoinRequest{Token: c.init.WorkerToken, Addr: c.init.Addr}); err != nil {
		t.Fatalf("a worker at level 3: %v", err)
	}
	if st := w.status(); st.Level != fsm.Level3 || st.ClusterVersion != fsm.CurrentLevel || st.NeedsUpgrade != nil {
		t.Errorf("worker status: level %d, cluster version %d, needs_upgrade %v; want %d, %d, none", st.Level, st.ClusterVersion, st.NeedsUpgrade, fsm.Level3, fsm.CurrentLevel)
	}
}

// A build refuses a data dir that needs a newer one to read it, naming
// both levels.
func TestDataDirOfANewerLevelIsRefused(t *testing.T) {
	m := newTestNode(t, "m")
	if _, err := m.client.Init(ctxT(t), api.InitRequest{}); err != nil {
		t.Fatal(err)
	}
	m.stop()
	path := m.node.dir.nodeInfoPath()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(fmt.Sprintf(`"level": %d`, fsm.CurrentLevel))) {
		t.Errorf("node.json does not record this build's level:\n%s", b)
	}
	b = bytes.Replace(b, []byte(fmt.Sprintf(`"level": %d`, fsm.CurrentLevel)), []byte(`"level": 9`), 1)
	b = bytes.Replace(b, []byte(`"read_level": 1`), []byte(`"read_level": 7`), 1)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = n.Run(ctx)
	want := fmt.Sprintf("written by a build of level 9 and needs a build of level 7 or later; this build is level %d", fsm.CurrentLevel)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("start on a newer data dir: got %v; want %q", err, want)
	}
}
