package manager

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/fsm"
)

func TestStaleServers(t *testing.T) {
	s := &fsm.State{
		Nodes:   map[string]*fsm.Node{"a": {ID: "a"}, "b": {ID: "b"}},
		Removed: map[string]time.Time{"c": time.Now().Add(time.Hour), "d": time.Now().Add(-time.Hour), "self": time.Now().Add(time.Hour)},
	}
	servers := []raft.Server{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d", Suffrage: raft.Nonvoter}, {ID: "e"}, {ID: "self"}}
	var got []string
	for _, srv := range staleServers(s, servers, "self") {
		got = append(got, string(srv.ID))
	}
	// c and d were removed (d's deny-list entry lapsed: still removed); e
	// is unknown to the deny list (a manager being added, whose record
	// may not be applied here yet) and stays; self stays.
	if want := []string{"c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("stale %v; want %v", got, want)
	}
}

// TestRemovalFinishesInRaft: a manager whose removal reached the state
// but not raft's configuration (the leader lost leadership in between)
// is removed from raft's configuration by the leader.
func TestRemovalFinishesInRaft(t *testing.T) {
	c := newCluster(t, 3, 0)
	l := c.leader()
	f := c.followers(l)[0]
	id := f.status().NodeID
	f.halt()
	rn := l.node.current().rn()
	// Only the state's half of `node rm --force`.
	if err := l.node.writes.applyCmd(ctxT(t), rn, &fsm.NodeRemove{ID: id, Until: time.Now().Add(time.Hour).UTC(), Force: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the removed manager gone from raft's configuration", func() bool {
		for _, srv := range l.node.current().rn().servers() {
			if string(srv.ID) == id {
				return false
			}
		}
		return true
	})
	if !strings.Contains(l.logs.String(), "finishing the removal of a node from raft's configuration") {
		t.Fatal("the leader did not log finishing the removal")
	}
}
