package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/ca"
)

func accessState(now time.Time) *State {
	s := newState()
	s.Cluster = &Cluster{ID: "c1"}
	s.Nodes["m1"] = &Node{ID: "m1", Role: ca.RoleManager}
	s.Nodes["m2"] = &Node{ID: "m2", Role: ca.RoleWorker} // demoted
	s.Nodes["w1"] = &Node{ID: "w1", Role: ca.RoleWorker}
	s.Nodes["p1"] = &Node{ID: "p1", Role: ca.RoleManager} // promoted, still on its worker certificate
	s.Removed["gone"] = now.Add(time.Hour)
	s.Removed["long-gone"] = now.Add(-time.Hour) // deny list entry past its certificate's expiry
	return s
}

func TestPeerRole(t *testing.T) {
	now := time.Now()
	s := accessState(now)
	tests := []struct {
		id             string
		certRole, want ca.Role
		err            error
	}{
		{"m1", ca.RoleManager, ca.RoleManager, nil},
		{"m2", ca.RoleManager, ca.RoleWorker, nil},
		{"w1", ca.RoleWorker, ca.RoleWorker, nil},
		{"w1", ca.RoleManager, ca.RoleWorker, nil},
		{"p1", ca.RoleWorker, ca.RoleWorker, nil},
		{"gone", ca.RoleManager, "", ErrNodeRemoved},
		{"long-gone", ca.RoleManager, "", ErrUnknownNode},
		{"stranger", ca.RoleManager, "", ErrUnknownNode},
	}
	for _, tc := range tests {
		got, err := s.PeerRole(tc.id, tc.certRole, now)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("PeerRole(%s, %s) = %q, %v; want %q, %v", tc.id, tc.certRole, got, err, tc.want, tc.err)
		}
	}
	// A state with no cluster yet knows no one: the certificate stands.
	if got, err := newState().PeerRole("anyone", ca.RoleManager, now); got != ca.RoleManager || err != nil {
		t.Errorf("empty state: PeerRole = %q, %v; want manager", got, err)
	}
}

func TestRaftPeer(t *testing.T) {
	now := time.Now()
	applied := now.Add(-time.Hour) // the newest entry this manager applied
	s := accessState(now)
	margin := 2 * time.Minute
	tests := []struct {
		name     string
		id       string
		issued   time.Time
		inConfig bool
		err      error
	}{
		{"current manager in the configuration", "m1", applied.Add(-24 * time.Hour), true, nil},
		// A manager being added or promoted, seen by a manager whose log
		// stops between its record and the configuration entry: it may be
		// the leader that must send that entry (the chaos soak's churn
		// found a joining manager that refused it and never caught up).
		{"manager not in the configuration yet", "m1", applied.Add(-24 * time.Hour), false, nil},
		{"demoted manager", "m2", applied, true, ErrNotManager},
		{"worker", "w1", applied, true, ErrNotManager},
		{"removed", "gone", now, true, ErrNodeRemoved},
		{"unknown, certificate older than the state", "stranger", applied.Add(-time.Hour), false, ErrUnknownNode},
		{"unknown, certificate newer than the state (this manager is behind)", "stranger", applied.Add(time.Minute), false, nil},
		{"unknown, within the clock margin", "stranger", applied.Add(-time.Minute), false, nil},
		{"unknown, but in the configuration", "stranger", applied.Add(-time.Hour), true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RaftPeer(tc.id, ca.RoleManager, tc.issued, tc.inConfig, applied, margin, now)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("RaftPeer = %v; want %v", err, tc.err)
			}
		})
	}
	if err := newState().RaftPeer("anyone", ca.RoleManager, time.Time{}, false, time.Time{}, margin, now); err != nil {
		t.Errorf("a manager with no state yet refused its first leader: %v", err)
	}
}

func TestAccessGeneration(t *testing.T) {
	f := New(nil)
	apply := func(c Command) {
		t.Helper()
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: f.Index() + 1, Type: raft.LogCommand, Data: b}); r.(*Result).Err != nil {
			t.Fatal(r.(*Result).Err)
		}
	}
	apply(&ClusterInit{Cluster: Cluster{ID: "c1", Settings: Settings{CertExpiry: time.Hour, KeyRotation: time.Minute}}, First: Node{ID: "m1", Role: ca.RoleManager}})
	g := f.AccessGeneration()
	apply(&NodeUpdate{ID: "m1", GossipAddr: "127.0.0.1:1"})
	if f.AccessGeneration() != g {
		t.Error("a gossip address update moved the access generation")
	}
	apply(&NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}})
	if f.AccessGeneration() == g {
		t.Error("adding a node did not move the access generation")
	}
	g = f.AccessGeneration()
	apply(&NodeRemove{ID: "w1", Until: time.Now().Add(time.Hour)})
	if f.AccessGeneration() == g {
		t.Error("removing a node did not move the access generation")
	}
}
