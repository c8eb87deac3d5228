package manager

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/overlaykeys"
	"github.com/holdfast/holdfast/transport"
)

// startGossip starts the node's memberlist with ring as its keyring.
func (n *Node) startGossip(inc *incarnation, ring *overlaykeys.Ring) (*transport.Gossip, error) {
	keys, primary, ok := ring.MemberlistKeys()
	if !ok {
		return nil, fmt.Errorf("no gossip keys yet")
	}
	listen := inc.info.GossipAddr
	if listen == "" {
		listen = n.cfg.GossipAddr
	}
	advHost, _, err := net.SplitHostPort(inc.info.AdvertiseAddr)
	if err != nil {
		return nil, fmt.Errorf("advertise address %q: %w", inc.info.AdvertiseAddr, err)
	}
	logger := n.logger.With("component", "gossip")
	g, err := transport.StartGossip(transport.GossipConfig{
		NodeID: inc.info.NodeID, ClusterID: inc.info.ClusterID,
		BindAddr: listen, AdvertiseHost: advHost, Keys: keys, Primary: primary,
		NewLogger: func(observe func(slog.Level, string) slog.Level) *log.Logger {
			return newMemberlistLogger(logger, observe)
		},
		Tune: n.cfg.gossipTune,
	})
	if err != nil {
		return nil, err
	}
	if host, port, _ := net.SplitHostPort(listen); port == "0" {
		// Keep the port across restarts, as for the main port.
		inc.infoMu.Lock()
		inc.info.GossipAddr = net.JoinHostPort(host, strconv.Itoa(g.BindPort()))
		err := n.saveNodeInfo(inc.info)
		inc.infoMu.Unlock()
		if err != nil {
			n.logger.Warn("cannot save the gossip port", "err", err)
		}
	}
	n.logger.Info("gossip started", "addr", g.Addr())
	return g, nil
}

// runGossip starts gossip once the node has a gossip keyring, keeps
// memberlist's keyring equal to the cluster's, records this node's gossip
// address in the cluster, and joins the peers it does not see.
func (n *Node) runGossip(ctx context.Context, inc *incarnation) {
	fresh := inc.rn() == nil // a worker's view comes from a manager's current state
	for {
		v, ch, closed := inc.keys.get()
		if closed {
			return
		}
		retry := 5 * time.Second
		g := inc.gossip.Load()
		if g == nil && v != nil && v.rings.Ring(overlaykeys.Gossip) != nil {
			if !fresh {
				// A manager back from a long sleep may still replay old
				// keys: read the state through the leader first, so it
				// does not gossip with keys the others have dropped.
				// Without quorum it goes on with what it has.
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := n.writes.linearize(lctx)
				cancel()
				fresh = true
				if err == nil {
					continue // re-read the view, now current
				}
			}
			var err error
			if g, err = n.startGossip(inc, v.rings.Ring(overlaykeys.Gossip)); err != nil {
				n.logger.Warn("cannot start gossip; retrying", "err", err)
				retry = time.Second
			} else {
				inc.gossip.Store(g)
			}
		}
		if g != nil && v != nil {
			if keys, primary, ok := v.rings.Ring(overlaykeys.Gossip).MemberlistKeys(); ok {
				if err := g.SetKeys(keys, primary); err != nil {
					n.logger.Warn("cannot install the gossip keyring", "err", err)
				}
			}
			if v.selfGossip != g.Addr() {
				if err := n.recordGossipAddr(ctx, inc, g.Addr()); err != nil {
					n.logger.Debug("cannot record this node's gossip address yet", "err", err)
					retry = time.Second
				}
			}
			peers := map[string]string{}
			for _, p := range v.peers {
				peers[p.NodeID] = p.Addr
			}
			g.JoinMissing(peers, n.logger)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-ch:
			t.Stop()
		case <-t.C:
		}
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

// recordGossipAddr records this node's gossip address in the cluster: a
// manager through raft, a worker through a manager.
func (n *Node) recordGossipAddr(ctx context.Context, inc *incarnation, addr string) error {
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
