package manager

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/overlaykeys"
)

// gossip is a node's memberlist: encrypted with the cluster's gossip
// keyring, labelled with the cluster ID, and used to tell which nodes are
// reachable.
type gossip struct {
	ml        *memberlist.Memberlist
	keyring   *memberlist.Keyring
	advertise string

	mu    sync.Mutex
	alive map[string]bool // node ID → alive (true) or dead/left (false)

	joining atomic.Bool
	// decryptFailures counts messages memberlist could not decrypt with
	// any installed key.
	decryptFailures atomic.Int64
}

// NotifyJoin, NotifyLeave and NotifyUpdate make gossip a
// memberlist.EventDelegate.
func (g *gossip) NotifyJoin(node *memberlist.Node)  { g.setAlive(node.Name, true) }
func (g *gossip) NotifyLeave(node *memberlist.Node) { g.setAlive(node.Name, false) }
func (g *gossip) NotifyUpdate(*memberlist.Node)     {}

func (g *gossip) setAlive(id string, alive bool) {
	g.mu.Lock()
	g.alive[id] = alive
	g.mu.Unlock()
}

// reachable tells whether gossip sees id alive, and whether it has seen id
// at all.
func (g *gossip) reachable(id string) (alive, known bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	alive, known = g.alive[id]
	return alive, known
}

// setKeys installs ring: new keys first, then the primary, then the old
// keys go (memberlist refuses to remove its primary).
func (g *gossip) setKeys(ring *overlaykeys.Ring) error {
	keys, primary, ok := ring.MemberlistKeys()
	if !ok {
		return fmt.Errorf("empty gossip keyring")
	}
	installed := g.keyring.GetKeys()
	has := func(set [][]byte, k []byte) bool {
		for _, s := range set {
			if bytes.Equal(s, k) {
				return true
			}
		}
		return false
	}
	for _, k := range keys {
		if !has(installed, k) {
			if err := g.keyring.AddKey(k); err != nil {
				return err
			}
		}
	}
	if !bytes.Equal(g.keyring.GetPrimaryKey(), primary) {
		if err := g.keyring.UseKey(primary); err != nil {
			return err
		}
	}
	for _, k := range installed {
		if !has(keys, k) {
			if err := g.keyring.RemoveKey(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinMissing asks memberlist to join the peers it does not see alive, in
// the background, one attempt at a time.
func (g *gossip) joinMissing(peers []api.PeerAddr, logger *slog.Logger) {
	var addrs []string
	for _, p := range peers {
		if alive, _ := g.reachable(p.NodeID); !alive {
			addrs = append(addrs, p.Addr)
		}
	}
	if len(addrs) == 0 || !g.joining.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer g.joining.Store(false)
		if n, err := g.ml.Join(addrs); err != nil {
			logger.Debug("gossip join incomplete", "joined", n, "tried", len(addrs), "err", err)
		}
	}()
}

// shutdown stops memberlist; graceful tells the others first, so they
// see the node leave rather than fail.
func (g *gossip) shutdown(graceful bool) {
	if graceful {
		_ = g.ml.Leave(time.Second)
	}
	_ = g.ml.Shutdown()
}

// memberlistObserver counts the messages memberlist could not decrypt,
// and keeps its complaints about unreachable peers — routine while a node
// is down — at warning level.
func (g *gossip) memberlistObserver(level slog.Level, line string) slog.Level {
	if strings.Contains(strings.ToLower(line), "decrypt") {
		g.decryptFailures.Add(1)
	}
	return min(level, slog.LevelWarn)
}

// startGossip starts the node's memberlist with ring as its keyring.
func (n *Node) startGossip(inc *incarnation, ring *overlaykeys.Ring) (*gossip, error) {
	keys, primary, ok := ring.MemberlistKeys()
	if !ok {
		return nil, fmt.Errorf("no gossip keys yet")
	}
	kr, err := memberlist.NewKeyring(keys, primary)
	if err != nil {
		return nil, err
	}
	listen := inc.info.GossipAddr
	if listen == "" {
		listen = n.cfg.GossipAddr
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: bad port", listen)
	}
	advHost, _, err := net.SplitHostPort(inc.info.AdvertiseAddr)
	if err != nil {
		return nil, fmt.Errorf("advertise address %q: %w", inc.info.AdvertiseAddr, err)
	}
	g := &gossip{keyring: kr, alive: map[string]bool{}}
	cfg := memberlist.DefaultLANConfig()
	cfg.Name = inc.info.NodeID
	cfg.BindAddr, cfg.BindPort = host, port
	cfg.AdvertiseAddr, cfg.AdvertisePort = advHost, port
	cfg.Keyring = kr
	cfg.GossipVerifyIncoming, cfg.GossipVerifyOutgoing = true, true
	// The label is authenticated data of every message: gossip from
	// another cluster is refused even if it had our key.
	cfg.Label = inc.info.ClusterID
	cfg.Events = g
	cfg.Logger = newMemberlistLogger(n.logger.With("component", "gossip"), g.memberlistObserver)
	if n.cfg.gossipTune != nil {
		n.cfg.gossipTune(cfg)
	}
	g.ml, err = memberlist.Create(cfg)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", listen, err)
	}
	g.advertise = net.JoinHostPort(advHost, strconv.Itoa(cfg.AdvertisePort))
	g.setAlive(inc.info.NodeID, true)
	if port == 0 {
		// Keep the port across restarts, as for the main port.
		inc.infoMu.Lock()
		inc.info.GossipAddr = net.JoinHostPort(host, strconv.Itoa(cfg.BindPort))
		err := n.saveNodeInfo(inc.info)
		inc.infoMu.Unlock()
		if err != nil {
			n.logger.Warn("cannot save the gossip port", "err", err)
		}
	}
	n.logger.Info("gossip started", "addr", g.advertise)
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
				_, err := n.linearize(lctx)
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
			if err := g.setKeys(v.rings.Ring(overlaykeys.Gossip)); err != nil {
				n.logger.Warn("cannot install the gossip keyring", "err", err)
			}
			if v.selfGossip != g.advertise {
				if err := n.recordGossipAddr(ctx, inc, g.advertise); err != nil {
					n.logger.Debug("cannot record this node's gossip address yet", "err", err)
					retry = time.Second
				}
			}
			g.joinMissing(v.peers, n.logger)
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
	return g.reachable(id)
}

// recordGossipAddr records this node's gossip address in the cluster: a
// manager through raft, a worker through a manager.
func (n *Node) recordGossipAddr(ctx context.Context, inc *incarnation, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
	defer cancel()
	if inc.rn() != nil {
		return n.apply(ctx, &fsm.NodeUpdate{ID: inc.info.NodeID, GossipAddr: addr})
	}
	var err error = fmt.Errorf("no manager known")
	for _, m := range inc.managers() {
		if err = n.peerClient(inc, m.Addr).SetGossipAddr(ctx, api.GossipAddrRequest{Addr: addr}); err == nil {
			return nil
		}
	}
	return err
}

// SetGossipAddr records where the calling node gossips.
func (n *Node) SetGossipAddr(ctx context.Context, from api.Peer, req api.GossipAddrRequest) error {
	host, port, err := net.SplitHostPort(req.Addr)
	if err != nil || host == "" || port == "0" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		return api.Errorf(http.StatusBadRequest, "gossip address %q: need a reachable HOST:PORT", req.Addr)
	}
	if _, _, err := n.managerRaft(); err != nil {
		return err
	}
	return n.apply(ctx, &fsm.NodeUpdate{ID: from.NodeID, GossipAddr: req.Addr})
}

// gossipStatus is what `status` shows of this node's gossip; nil before
// it starts.
func (inc *incarnation) gossipStatus() *api.GossipStatus {
	g := inc.gossip.Load()
	if g == nil {
		return nil
	}
	st := &api.GossipStatus{Addr: g.advertise, Members: g.ml.NumMembers()}
	if v, _, _ := inc.keys.get(); v != nil {
		if p, ok := v.rings.Ring(overlaykeys.Gossip).Primary(); ok {
			st.PrimaryLamport = p.Lamport
		}
	}
	return st
}
