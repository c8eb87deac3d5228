package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// TestNodeAddr: node.addr moves a node's record to a reachable HOST:PORT,
// and Check and Apply refuse alike an unknown node, an address nobody can
// reach, and another manager's address (a worker's is not checked: raft
// knows only managers).
func TestNodeAddr(t *testing.T) {
	base := func() *State {
		s := newState()
		s.Cluster = &Cluster{ID: "c1", Settings: Settings{CertExpiry: time.Hour, KeyRotation: time.Minute}}
		s.Nodes["m1"] = &Node{ID: "m1", Role: ca.RoleManager, Addr: "10.0.0.1:4242"}
		s.Nodes["m2"] = &Node{ID: "m2", Role: ca.RoleManager, Addr: "10.0.0.2:4242"}
		s.Nodes["w1"] = &Node{ID: "w1", Role: ca.RoleWorker, Addr: "10.0.0.9:4242"}
		return s
	}
	tests := []struct {
		name string
		cmd  *NodeAddr
		err  error
	}{
		{"new address", &NodeAddr{ID: "m1", Addr: "10.0.0.101:4242"}, nil},
		{"same address", &NodeAddr{ID: "m1", Addr: "10.0.0.1:4242"}, nil},
		{"a worker's address", &NodeAddr{ID: "m1", Addr: "10.0.0.9:4242"}, nil},
		{"a worker moves", &NodeAddr{ID: "w1", Addr: "10.0.0.8:5000"}, nil},
		{"a hostname", &NodeAddr{ID: "m1", Addr: "m1.example:4242"}, nil},
		{"unknown node", &NodeAddr{ID: "nobody", Addr: "10.0.0.7:4242"}, ErrNodeNotFound},
		{"another manager's", &NodeAddr{ID: "m1", Addr: "10.0.0.2:4242"}, ErrAddrInUse},
		{"no port", &NodeAddr{ID: "m1", Addr: "10.0.0.7"}, ErrBadAddr},
		{"port 0", &NodeAddr{ID: "m1", Addr: "10.0.0.7:0"}, ErrBadAddr},
		{"unspecified", &NodeAddr{ID: "m1", Addr: "0.0.0.0:4242"}, ErrBadAddr},
		{"no host", &NodeAddr{ID: "m1", Addr: ":4242"}, ErrBadAddr},
		{"empty", &NodeAddr{ID: "m1"}, ErrBadAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			cerr := s.Check(tc.cmd)
			// Through the encoding, as raft delivers it.
			b, err := Encode(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			aerr := applyTo(s, c)
			for what, got := range map[string]error{"Check": cerr, "Apply": aerr} {
				if (tc.err == nil) != (got == nil) || tc.err != nil && !errors.Is(got, tc.err) {
					t.Errorf("%s = %v; want %v", what, got, tc.err)
				}
			}
			want := base().Nodes[tc.cmd.ID]
			if tc.err == nil {
				want.Addr = tc.cmd.Addr
			}
			if got := s.Nodes[tc.cmd.ID]; want != nil && got.Addr != want.Addr {
				t.Errorf("record's address = %q; want %q", got.Addr, want.Addr)
			}
		})
	}
}

// TestNodeAddrDowngrade: node.addr is Level5; a cluster below it gets
// node.update version 1 with the same node and address (which every
// level applies), and Level5 gets node.addr itself.
func TestNodeAddrDowngrade(t *testing.T) {
	b, err := Encode(&NodeAddr{ID: "m1", Addr: "10.0.0.101:4242"})
	if err != nil {
		t.Fatal(err)
	}
	if !Knows(Level5, TypeNodeAddr, 1) || Knows(Level4, TypeNodeAddr, 1) {
		t.Fatalf("node.addr/1 known at level 4: %v, at 5: %v; want only from 5", Knows(Level4, TypeNodeAddr, 1), Knows(Level5, TypeNodeAddr, 1))
	}
	for cv := Level1; cv <= Level4; cv++ {
		down, err := Downgrade(b, cv)
		if err != nil {
			t.Fatalf("Downgrade at %d: %v", cv, err)
		}
		if _, bad := unknownIn(down, cv); bad {
			t.Fatalf("Downgrade at %d gave an entry that level cannot apply", cv)
		}
		c, err := Decode(down)
		if err != nil {
			t.Fatal(err)
		}
		u, ok := c.(*NodeUpdate)
		if !ok || u.ID != "m1" || u.Addr != "10.0.0.101:4242" || u.Version() != 1 {
			t.Fatalf("Downgrade at %d = %#v; want node.update/1 of m1 to 10.0.0.101:4242", cv, c)
		}
	}
	same, err := Downgrade(b, Level5)
	if err != nil || string(same) != string(b) {
		t.Fatalf("Downgrade at level 5 = %q, %v; want the entry itself", same, err)
	}
}
