package manager

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/transport"
)

func TestClusterFormsAndReportsStatus(t *testing.T) {
	c := newCluster(t, 3, 1)
	l := c.leader()
	eventually(t, 10*time.Second, "3 reachable voters", func() bool {
		st := l.status()
		ok := len(st.Managers) == 3
		for _, m := range st.Managers {
			ok = ok && m.Voter && m.Reachable
		}
		return ok
	})
	for _, m := range c.managers {
		st := m.status()
		if st.Role != "manager" || st.State != api.StateReady || st.ClusterID != c.init.ClusterID {
			t.Errorf("%s: got role %q state %q cluster %q; want manager ready %s", m.name, st.Role, st.State, st.ClusterID, c.init.ClusterID)
		}
		if st.Leader.NodeID == "" || st.Raft.Term == 0 || st.Raft.CommitIndex == 0 {
			t.Errorf("%s: status lacks leader or raft figures: %+v", m.name, st)
		}
	}
	w := c.workers[0].status()
	if w.Role != "worker" || w.State != api.StateReady || w.ClusterID != c.init.ClusterID || w.Leader.NodeID == "" {
		t.Errorf("worker status: got %+v; want a ready worker that sees the leader", w)
	}
	nodes, err := c.managers[1].client.Nodes(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	roles := map[ca.Role]int{}
	voters := 0
	for _, n := range nodes {
		roles[n.Role]++
		if n.Voter {
			voters++
		}
	}
	if roles["manager"] != 3 || roles["worker"] != 1 || voters != 3 {
		t.Errorf("node ls: got %v with %d voters; want 3 managers (voters) and 1 worker", roles, voters)
	}
	self, err := c.workers[0].client.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.managers[2].client.Node(ctxT(t), self.NodeID); err != nil || n.Role != "worker" {
		t.Errorf("node inspect of the worker: got %+v, %v; want its record", n, err)
	}
}

// Writes through one follower are seen by a read on another at once.
func TestReadAfterWriteOnAnyManager(t *testing.T) {
	c := newCluster(t, 3, 0)
	fs := c.followers(c.leader())
	for i := range 5 {
		writer, reader := fs[i%2], fs[(i+1)%2]
		tok, err := writer.client.RotateJoinToken(ctxT(t), "worker")
		if err != nil {
			t.Fatalf("rotate through %s: %v", writer.name, err)
		}
		got, err := reader.client.JoinToken(ctxT(t), "worker")
		if err != nil {
			t.Fatal(err)
		}
		if got.Token != tok.Token {
			t.Fatalf("round %d: %s read token %q after %s wrote %q", i, reader.name, got.Token, writer.name, tok.Token)
		}
	}
}

func TestLeaderLossAndFollowerRestart(t *testing.T) {
	c := newCluster(t, 3, 0)
	old := c.leader()
	oldID := old.status().NodeID
	old.halt()

	// A write through a survivor succeeds once a new leader is elected.
	// One that was in flight to the dead leader may fail with 503 (outcome
	// unknown), as a client of any replicated store may see; the client
	// retries, as the CLI's users would.
	survivor := c.followers(old)[0]
	var tok *api.JoinToken
	eventually(t, 10*time.Second, "a write after leader loss", func() bool {
		var err error
		tok, err = survivor.client.RotateJoinToken(ctxT(t), "manager")
		if err != nil && apiStatus(err) != http.StatusServiceUnavailable {
			t.Fatalf("write after leader loss: %v", err)
		}
		return err == nil
	})
	nl := c.leader()
	if nl.status().NodeID == oldID {
		t.Fatal("the halted leader is still leader")
	}

	// The old leader comes back as a follower and catches up.
	old.start()
	got, err := old.client.JoinToken(ctxT(t), "manager")
	if err != nil {
		t.Fatalf("read on the restarted node: %v", err)
	}
	if got.Token != tok.Token {
		t.Errorf("restarted node read %q; want the token written while it was down", got.Token)
	}
	// A follower restarted gracefully catches up too.
	f := c.followers(c.leader())[0]
	f.stop()
	tok2, err := c.leader().client.RotateJoinToken(ctxT(t), "worker")
	if err != nil {
		t.Fatal(err)
	}
	f.start()
	eventually(t, 10*time.Second, "restarted follower applies the write", func() bool {
		st := f.status()
		return st.Raft.AppliedIndex >= c.leader().status().Raft.CommitIndex-1
	})
	if got, err := f.client.JoinToken(ctxT(t), "worker"); err != nil || got.Token != tok2.Token {
		t.Errorf("restarted follower: got %v, %v; want %q", got, err, tok2.Token)
	}
}

func TestPromoteAndDemote(t *testing.T) {
	c := newCluster(t, 1, 1)
	m, w := c.managers[0], c.workers[0]
	wid := w.status().NodeID
	if err := m.client.Promote(ctxT(t), wid); err != nil {
		t.Fatalf("promote: %v", err)
	}
	eventually(t, 15*time.Second, "the promoted worker becomes a voter", func() bool {
		st := w.status()
		if st.Role != "manager" {
			return false
		}
		n, err := m.client.Node(ctxT(t), wid)
		return err == nil && n.Role == "manager" && n.Voter
	})
	// The promoted node serves reads and writes itself.
	if _, err := w.client.RotateJoinToken(ctxT(t), "worker"); err != nil {
		t.Fatalf("write through the promoted node: %v", err)
	}
	// Demote it again through itself.
	if err := w.client.Demote(ctxT(t), wid); err != nil {
		t.Fatalf("demote: %v", err)
	}
	eventually(t, 15*time.Second, "the demoted manager becomes a worker", func() bool {
		n, err := m.client.Node(ctxT(t), wid)
		return err == nil && n.Role == "worker" && !n.Voter && w.status().Role == "worker"
	})
	if got := len(m.status().Managers); got != 1 {
		t.Errorf("raft has %d members after the demotion; want 1", got)
	}
	// Promoted again, it opens raft on its port again and becomes a voter.
	if err := m.client.Promote(ctxT(t), wid); err != nil {
		t.Fatalf("promote again: %v", err)
	}
	eventually(t, 15*time.Second, "the re-promoted node is a reachable voter", func() bool {
		for _, s := range m.status().Managers {
			if s.NodeID == wid {
				return s.Voter && s.Reachable && w.status().Role == "manager"
			}
		}
		return false
	})
	if err := m.client.Demote(ctxT(t), wid); err != nil {
		t.Fatalf("demote again: %v", err)
	}
	eventually(t, 15*time.Second, "demoted again", func() bool { return len(m.status().Managers) == 1 })
	// The last manager cannot be demoted.
	err := m.client.Demote(ctxT(t), m.status().NodeID)
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "last manager") {
		t.Errorf("demote last manager: got %v; want 409 naming the last manager", err)
	}
}

func TestRemovedNodeIsRefused(t *testing.T) {
	c := newCluster(t, 3, 1)
	m, w := c.managers[1], c.workers[0]
	wid := w.status().NodeID
	// Keep the worker's credentials to dial with after its removal.
	creds := w.node.current().creds

	if err := m.client.RemoveNode(ctxT(t), c.managers[2].status().NodeID, false); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("rm of a manager without --force: got %v; want 400", err)
	}
	if err := m.client.RemoveNode(ctxT(t), wid, false); err != nil {
		t.Fatalf("rm worker: %v", err)
	}
	if _, err := m.client.Node(ctxT(t), wid); apiStatus(err) != http.StatusNotFound {
		t.Errorf("inspect removed node: got %v; want 404", err)
	}
	// Its certificate is refused by every manager from now on.
	hc := transport.NewAPIClient(transport.Config{Creds: creds})
	defer hc.CloseIdleConnections()
	for _, mgr := range c.managers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := api.NewClient(hc, "https://"+mgr.status().Addr).Self(ctx, 0)
		cancel()
		if err == nil {
			t.Errorf("%s served the removed node", mgr.name)
		}
		hc.CloseIdleConnections()
	}
	// A manager goes with --force.
	victim := c.managers[2]
	vid := victim.status().NodeID
	if err := m.client.RemoveNode(ctxT(t), vid, true); err != nil {
		t.Fatalf("rm --force manager: %v", err)
	}
	eventually(t, 10*time.Second, "raft without the removed manager", func() bool {
		for _, s := range m.status().Managers {
			if s.NodeID == vid {
				return false
			}
		}
		return true
	})
	// The removed manager learns it from its own log and wipes its state,
	// and says it was removed.
	eventually(t, 10*time.Second, "the removed manager wipes its state", func() bool {
		_, err := os.Stat(filepath.Join(victim.dir, "raft"))
		return victim.status().State == api.StateRemoved && os.IsNotExist(err)
	})
}
