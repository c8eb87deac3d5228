package manager

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/overlaykeys"
	"github.com/holdfast/holdfast/transport"
)

// gossiper starts the node's memberlist once the node has a gossip
// keyring, keeps memberlist's keyring equal to the cluster's, records this
// node's gossip address in the cluster, and joins the peers it does not
// see. Its memberlist outlives a role change (slot is the incarnation's).
type gossiper struct {
	keys *keyBox
	slot *atomic.Pointer[transport.Gossip]
	// fresh: the key view comes from a manager's current state (a
	// worker's); a manager reads through the leader before it first
	// gossips.
	fresh     bool
	linearize func(ctx context.Context) error
	// addrs says where to listen and which host to advertise, read when
	// gossip starts.
	addrs func() (listen, advertise string)
	// savePort keeps a port memberlist chose across restarts.
	savePort func(addr string) error
	// record records this node's gossip address in the cluster.
	record func(ctx context.Context, addr string) error
	cfg    transport.GossipConfig // NodeID, ClusterID and Tune
	log    *slog.Logger
}

// start starts the node's memberlist with ring as its keyring.
func (g *gossiper) start(ring *overlaykeys.Ring) (*transport.Gossip, error) {
	keys, primary, ok := ring.MemberlistKeys()
	if !ok {
		return nil, fmt.Errorf("no gossip keys yet")
	}
	listen, advertise := g.addrs()
	advHost, _, err := net.SplitHostPort(advertise)
	if err != nil {
		return nil, fmt.Errorf("advertise address %q: %w", advertise, err)
	}
	logger := g.log.With("component", "gossip")
	cfg := g.cfg
	cfg.BindAddr, cfg.AdvertiseHost, cfg.Keys, cfg.Primary = listen, advHost, keys, primary
	cfg.NewLogger = func(observe func(slog.Level, string) slog.Level) *log.Logger {
		return newMemberlistLogger(logger, observe)
	}
	m, err := transport.StartGossip(cfg)
	if err != nil {
		return nil, err
	}
	if host, port, _ := net.SplitHostPort(listen); port == "0" {
		// Keep the port across restarts, as for the main port.
		if err := g.savePort(net.JoinHostPort(host, strconv.Itoa(m.BindPort()))); err != nil {
			g.log.Warn("cannot save the gossip port", "err", err)
		}
	}
	g.log.Info("gossip started", "addr", m.Addr())
	return m, nil
}

func (g *gossiper) Run(ctx context.Context) error {
	fresh := g.fresh
	for {
		v, ch, closed := g.keys.get()
		if closed {
			return nil
		}
		retry := 5 * time.Second
		m := g.slot.Load()
		if m == nil && v != nil && v.rings.Ring(overlaykeys.Gossip) != nil {
			if !fresh {
				// A manager back from a long sleep may still replay old
				// keys: read the state through the leader first, so it
				// does not gossip with keys the others have dropped.
				// Without quorum it goes on with what it has.
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := g.linearize(lctx)
				cancel()
				fresh = true
				if err == nil {
					continue // re-read the view, now current
				}
			}
			var err error
			if m, err = g.start(v.rings.Ring(overlaykeys.Gossip)); err != nil {
				g.log.Warn("cannot start gossip; retrying", "err", err)
				retry = time.Second
			} else {
				g.slot.Store(m)
			}
		}
		if m != nil && v != nil {
			if keys, primary, ok := v.rings.Ring(overlaykeys.Gossip).MemberlistKeys(); ok {
				if err := m.SetKeys(keys, primary); err != nil {
					g.log.Warn("cannot install the gossip keyring", "err", err)
				}
			}
			if v.selfGossip != m.Addr() {
				if err := g.record(ctx, m.Addr()); err != nil {
					g.log.Debug("cannot record this node's gossip address yet", "err", err)
					retry = time.Second
				}
			}
			peers := map[string]string{}
			for _, p := range v.peers {
				peers[p.NodeID] = p.Addr
			}
			m.JoinMissing(peers, g.log)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-ch:
			t.Stop()
		case <-t.C:
		}
	}
}

// newGossiper builds inc's gossiper.
func newGossiper(n *Node, inc *incarnation) *gossiper {
	return &gossiper{
		keys:  inc.keys,
		slot:  &inc.gossip,
		fresh: inc.rn() == nil,
		linearize: func(ctx context.Context) error {
			_, err := n.writes.linearize(ctx)
			return err
		},
		addrs: func() (string, string) {
			listen := inc.info.GossipAddr
			if listen == "" {
				listen = n.cfg.GossipAddr
			}
			return listen, inc.info.AdvertiseAddr
		},
		savePort: func(addr string) error {
			inc.infoMu.Lock()
			defer inc.infoMu.Unlock()
			inc.info.GossipAddr = addr
			return n.dir.saveNodeInfo(inc.info)
		},
		record: func(ctx context.Context, addr string) error {
			ctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
			defer cancel()
			if inc.rn() != nil {
				return n.writes.apply(ctx, &fsm.NodeUpdate{ID: inc.info.NodeID, GossipAddr: addr})
			}
			var err error = fmt.Errorf("no manager known")
			for _, m := range inc.managers() {
				if err = peerClient(inc, m.Addr).SetGossipAddr(ctx, api.GossipAddrRequest{Addr: addr}); err == nil {
					return nil
				}
			}
			return err
		},
		cfg: transport.GossipConfig{NodeID: inc.info.NodeID, ClusterID: inc.info.ClusterID, Tune: n.cfg.gossipTune},
		log: n.logger,
	}
}

// gossipReach answers whether gossip sees id; ok is false when this node
// does not gossip yet or has never seen id.
func (inc *incarnation) gossipReach(id string) (alive, ok bool) {
	g := inc.gossip.Load()
	if g == nil {
		return false, false
	}
	return g.Reachable(id)
}

// SetGossipAddr records where the calling node gossips.
func (a *nodeAPI) SetGossipAddr(ctx context.Context, from api.Peer, req api.GossipAddrRequest) error {
	host, port, err := net.SplitHostPort(req.Addr)
	if err != nil || host == "" || port == "0" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		return api.Errorf(api.CodeInvalidArgument, "gossip address %q: need a reachable HOST:PORT", req.Addr)
	}
	if _, _, err := a.writes.managerRaft(); err != nil {
		return err
	}
	return a.writes.apply(ctx, &fsm.NodeUpdate{ID: from.NodeID, GossipAddr: req.Addr})
}

// gossipStatus is what `status` shows of this node's gossip; nil before
// it starts.
func (inc *incarnation) gossipStatus() *api.GossipStatus {
	g := inc.gossip.Load()
	if g == nil {
		return nil
	}
	st := &api.GossipStatus{Addr: g.Addr(), Members: g.Members()}
	if v, _, _ := inc.keys.get(); v != nil {
		if p, ok := v.rings.Ring(overlaykeys.Gossip).Primary(); ok {
			st.PrimaryLamport = p.Lamport
		}
	}
	return st
}
