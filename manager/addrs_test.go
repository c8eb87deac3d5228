package manager

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// TestPlanAddrs: where a node with state listens and what it advertises,
// from node.json and what this start asks for. An address given that
// differs from the stored one is used (it was silently ignored before),
// a default never moves a node, port 0 on the stored host keeps the
// stored port, and a stored advertise IP this machine no longer has is
// refused with what to do.
func TestPlanAddrs(t *testing.T) {
	local := func(ip net.IP) bool {
		return ip.IsLoopback() || ip.Equal(net.ParseIP("10.0.0.1")) || ip.Equal(net.ParseIP("10.0.0.2"))
	}
	stored := nodeInfo{ListenAddr: "10.0.0.1:4242", AdvertiseAddr: "10.0.0.1:4242", GossipAddr: ""}
	tests := []struct {
		name   string
		stored nodeInfo
		ask    addrAsk
		want   addrPlan
		err    error
	}{
		{"same flags", stored,
			addrAsk{listen: "10.0.0.1:4242", listenGiven: true, advertise: "10.0.0.1:4242", gossip: "10.0.0.1:4243", gossipGiven: true},
			addrPlan{listen: "10.0.0.1:4242", advertise: "10.0.0.1:4242"}, nil},
		{"no flags: the stored addresses", stored,
			addrAsk{listen: "0.0.0.0:4242", gossip: "0.0.0.0:4243"},
			addrPlan{listen: "10.0.0.1:4242", advertise: "10.0.0.1:4242", listenStored: true}, nil},
		{"new listen and advertise", stored,
			addrAsk{listen: "10.0.0.2:4242", listenGiven: true, advertise: "10.0.0.2:4242"},
			addrPlan{listen: "10.0.0.2:4242", advertise: "10.0.0.2:4242"}, nil},
		{"new port", stored,
			addrAsk{listen: "10.0.0.1:5000", listenGiven: true, advertise: "10.0.0.1:5000"},
			addrPlan{listen: "10.0.0.1:5000", advertise: "10.0.0.1:5000"}, nil},
		{"new listen only: advertise derived from it", stored,
			addrAsk{listen: "10.0.0.2:4242", listenGiven: true},
			addrPlan{listen: "10.0.0.2:4242", advertise: ""}, nil},
		{"new advertise only (behind NAT)", stored,
			addrAsk{listen: "10.0.0.1:4242", advertise: "203.0.113.5:4242"},
			addrPlan{listen: "10.0.0.1:4242", advertise: "203.0.113.5:4242"}, nil},
		{"port 0 on the stored host keeps the stored port", nodeInfo{ListenAddr: "127.0.0.1:41234", AdvertiseAddr: "127.0.0.1:41234", GossipAddr: "127.0.0.1:41235"},
			addrAsk{listen: "127.0.0.1:0", listenGiven: true, gossip: "127.0.0.1:0", gossipGiven: true},
			addrPlan{listen: "127.0.0.1:41234", advertise: "127.0.0.1:41234", gossip: "127.0.0.1:41235"}, nil},
		{"port 0 on another host moves", nodeInfo{ListenAddr: "127.0.0.1:41234", AdvertiseAddr: "127.0.0.1:41234", GossipAddr: "127.0.0.1:41235"},
			addrAsk{listen: "10.0.0.2:0", listenGiven: true, gossip: "10.0.0.2:0", gossipGiven: true},
			addrPlan{listen: "10.0.0.2:0", advertise: "", gossip: ""}, nil},
		{"stored advertise IP gone, no flag", nodeInfo{ListenAddr: "0.0.0.0:4242", AdvertiseAddr: "10.0.0.7:4242"},
			addrAsk{listen: "0.0.0.0:4242", listenGiven: true},
			addrPlan{}, ErrAddrGone},
		{"stored advertise IP gone, new one given", nodeInfo{ListenAddr: "0.0.0.0:4242", AdvertiseAddr: "10.0.0.7:4242"},
			addrAsk{listen: "0.0.0.0:4242", listenGiven: true, advertise: "10.0.0.2:4242"},
			addrPlan{listen: "0.0.0.0:4242", advertise: "10.0.0.2:4242"}, nil},
		{"stored advertise a hostname", nodeInfo{ListenAddr: "0.0.0.0:4242", AdvertiseAddr: "m1.example:4242"},
			addrAsk{listen: "0.0.0.0:4242"},
			addrPlan{listen: "0.0.0.0:4242", advertise: "m1.example:4242"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := tc.stored
			got, err := planAddrs(&info, tc.ask, local)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("planAddrs error = %v; want %v", err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Errorf("planAddrs = %+v; want %+v", got, tc.want)
			}
			if info.ListenAddr != tc.stored.ListenAddr || info.AdvertiseAddr != tc.stored.AdvertiseAddr || info.GossipAddr != tc.stored.GossipAddr {
				t.Errorf("planAddrs changed the stored info: %+v", info)
			}
		})
	}
}

// TestAddrMover: a manager whose state disagrees with its address asks
// the other managers in turn (never itself first, never once recorded)
// until one succeeds, and stops once its state shows the address; a
// worker asks once per start.
func TestAddrMover(t *testing.T) {
	peers := []api.PeerAddr{{NodeID: "m1", Addr: "a1"}, {NodeID: "m2", Addr: "a2"}, {NodeID: "m3", Addr: "old"}}
	t.Run("manager", func(t *testing.T) {
		var mu sync.Mutex
		rec := "old"
		changed := make(chan struct{})
		var asked []string
		m := &addrMover{
			self: "m3", addr: "new", managers: func() []api.PeerAddr { return peers }, timeout: time.Second, log: slog.New(slog.DiscardHandler),
			recorded: func() (bool, string) { mu.Lock(); defer mu.Unlock(); return rec == "new", rec },
			changed:  func() <-chan struct{} { return changed },
			ask: func(_ context.Context, addr string, req api.NodeAddrRequest) error {
				mu.Lock()
				defer mu.Unlock()
				asked = append(asked, addr)
				if req.Addr != "new" || req.NodeID != "" {
					t.Errorf("asked for %+v; want this node's new address", req)
				}
				if addr != "a2" {
					return api.Errorf(api.CodeUnavailable, "no leader")
				}
				rec = "new"
				close(changed)
				return nil
			},
		}
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if want := []string{"a1", "a2"}; !slices.Equal(asked, want) {
			t.Errorf("asked %q; want %q", asked, want)
		}
		asked = nil
		if err := m.Run(context.Background()); err != nil || asked != nil {
			t.Errorf("run again once recorded: asked %q, %v; want nobody", asked, err)
		}
	})
	t.Run("worker", func(t *testing.T) {
		calls := 0
		m := &addrMover{
			self: "w1", addr: "new", managers: func() []api.PeerAddr { return peers }, timeout: time.Second, log: slog.New(slog.DiscardHandler),
			ask: func(_ context.Context, addr string, _ api.NodeAddrRequest) error {
				calls++
				if addr == "" {
					t.Error("a worker asked itself")
				}
				return nil
			},
		}
		if err := m.Run(context.Background()); err != nil || calls != 1 {
			t.Errorf("worker: %d requests, %v; want 1", calls, err)
		}
	})
}
