package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/backoff"
)

// A node at a new address (docs/DESIGN-NOTES.md, "A node at a new
// address"): a node restarted with another --listen-addr,
// --advertise-addr or --gossip-addr than node.json records moves to it
// (planAddrs), says so in its log, and asks the cluster to record its
// new address (addrMover, through the leader's SetSelfAddr).

// addrAsk is what the operator asked for at this start: Config's
// addresses, and whether the listen and gossip addresses were given
// rather than defaults. An advertise address is given when it is set.
type addrAsk struct {
	listen      string
	listenGiven bool
	advertise   string
	gossip      string
	gossipGiven bool
}

func (c *Config) addrAsk() addrAsk {
	return addrAsk{listen: c.ListenAddr, listenGiven: c.ListenAddrGiven, advertise: c.AdvertiseAddr, gossip: c.GossipAddr, gossipGiven: c.GossipAddrGiven}
}

// addrPlan is where a node with state listens and what it advertises.
// An empty advertise is derived from the bound listen address (as on a
// first start); an empty gossip is Config.GossipAddr's.
type addrPlan struct {
	listen, advertise, gossip string
	// listenStored: listen is node.json's where this start's listen
	// address, a default, would have been another (so a failure to bind
	// it can say how to move the node).
	listenStored bool
}

// ErrAddrGone is a node whose node.json says other nodes reach it at an
// IP address this machine no longer has, started without an address to
// use instead.
var ErrAddrGone = errors.New("stored advertise address is not an address of this machine")

// planAddrs decides where a node whose node.json is stored listens and
// what it advertises, given what the operator asked for; isLocal tells
// whether an IP is one of this machine's. The rule:
//
//   - An address asked for is used. A listen or gossip address counts as
//     asked for only when given (a flag, not a default), and port 0 on
//     the stored host asks for nothing new (the stored port is the one
//     port 0 chose).
//   - An advertise address not given is the stored one, unless the listen
//     address moved: then it is derived from the new listen address, as
//     on a first start.
//   - A stored advertise address kept that way must still be this
//     machine's when it is an IP (a machine whose IP changed, restarted
//     with the same flags): otherwise ErrAddrGone, saying what to do,
//     rather than a node the others cannot reach.
func planAddrs(stored *nodeInfo, ask addrAsk, isLocal func(net.IP) bool) (addrPlan, error) {
	p := addrPlan{listen: stored.ListenAddr, advertise: stored.AdvertiseAddr, gossip: stored.GossipAddr}
	listenMoved := false
	switch {
	case stored.ListenAddr == "":
		p.listen = ask.listen
	case sameBind(stored.ListenAddr, ask.listen):
	case ask.listenGiven:
		p.listen, listenMoved = ask.listen, true
	default:
		p.listenStored = true
	}
	switch {
	case ask.advertise != "":
		p.advertise = ask.advertise
	case listenMoved:
		p.advertise = ""
	case stored.AdvertiseAddr != "":
		host, _, err := net.SplitHostPort(stored.AdvertiseAddr)
		if ip := net.ParseIP(host); err == nil && ip != nil && !isLocal(ip) {
			return addrPlan{}, fmt.Errorf("%w: node.json says other nodes reach this node at %s, but this machine has no address %s (did its IP change?); start it with --advertise-addr HOST:PORT (and --listen-addr if it listens on a specific IP) to move it to its address now: the cluster then records it",
				ErrAddrGone, stored.AdvertiseAddr, host)
		}
	}
	if ask.gossipGiven && stored.GossipAddr != "" && !sameBind(stored.GossipAddr, ask.gossip) {
		p.gossip = ""
	}
	return p, nil
}

// sameBind reports whether asking for asked at a start keeps stored: the
// same address, or port 0 on the same host (port 0 chose stored's port on
// the first start).
func sameBind(stored, asked string) bool {
	if stored == asked {
		return true
	}
	sh, _, err1 := net.SplitHostPort(stored)
	ah, ap, err2 := net.SplitHostPort(asked)
	return err1 == nil && err2 == nil && ap == "0" && sh == ah
}

// isLocalIP reports whether ip is loopback or an address of one of this
// machine's interfaces. When the interfaces cannot be listed it says yes:
// it is a check for a clear error, not a gate.
func isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// applyAddrPlan sets info's addresses from the plan for this start.
func (n *Node) applyAddrPlan(info *nodeInfo) (addrPlan, error) {
	if info.ListenAddr == "" && info.AdvertiseAddr == "" {
		// A first start (init, join): settleAddrs fills both.
		return addrPlan{listen: n.cfg.ListenAddr}, nil
	}
	p, err := planAddrs(info, n.cfg.addrAsk(), isLocalIP)
	if err != nil {
		return p, err
	}
	info.ListenAddr, info.AdvertiseAddr, info.GossipAddr = p.listen, p.advertise, p.gossip
	return p, nil
}

// checkAddrs refuses, at once, addresses that start would refuse
// (ErrAddrGone), so a locked node says so before it waits for its key.
func (n *Node) checkAddrs(info *nodeInfo) error {
	if info.ListenAddr == "" && info.AdvertiseAddr == "" {
		return nil
	}
	_, err := planAddrs(info, n.cfg.addrAsk(), isLocalIP)
	return err
}

// logAddrMoves says, at INFO, each address that differs from node.json's
// (before), old and new.
func logAddrMoves(log *slog.Logger, before nodeInfo, after *nodeInfo) bool {
	moved := false
	for _, m := range []struct{ what, old, new string }{
		{"listen", before.ListenAddr, after.ListenAddr},
		{"advertise", before.AdvertiseAddr, after.AdvertiseAddr},
		{"gossip", before.GossipAddr, after.GossipAddr},
	} {
		if m.old != "" && m.old != m.new {
			moved = true
			log.Info("this node's address changed; using the new one", "address", m.what, "old", m.old, "new", m.new)
		}
	}
	return moved
}

// SetSelfAddr records the caller's new address: its node record and, for
// a manager, its address in raft's configuration. A manager forwarding it
// to its leader names the node (req.NodeID); no one else may.
func (a *nodeAPI) SetSelfAddr(ctx context.Context, from api.Peer, req api.NodeAddrRequest) error {
	id := from.NodeID
	if req.NodeID != "" && req.NodeID != from.NodeID {
		if from.Role != ca.RoleManager {
			return api.Errorf(api.CodePermissionDenied, "only a manager forwards another node's address")
		}
		id = req.NodeID
	}
	if err := fsm.CheckAddr(req.Addr); err != nil {
		return api.Wrap(api.CodeInvalidArgument, err)
	}
	fwd := api.NodeAddrRequest{NodeID: id, Addr: req.Addr}
	return a.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error { return moveAddrLocal(ctx, a.writes, rn, id, req.Addr) },
		func(ctx context.Context, c *api.Client) error { return c.SetSelfAddr(ctx, fwd) })
}

// moveAddrLocal, on the leader, moves node id to addr: raft's
// configuration first (so the leader reaches a manager there, and the
// node has the configuration entry before its record), then the node
// record (node.addr). Each is done only if it differs, so a retry after a
// failure does what is left.
func moveAddrLocal(ctx context.Context, w *writePath, rn *raftNode, id, addr string) error {
	var rec string
	known := false
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if p, ok := s.Nodes[id]; ok {
			rec, known = p.Addr, true
		}
	})
	if !known {
		return api.Errorf(api.CodePermissionDenied, "node %s is not a member of this cluster", id)
	}
	for _, s := range rn.servers() {
		if string(s.ID) != id || string(s.Address) == addr {
			continue
		}
		// AddNonvoter on a server raft knows changes only its address
		// (a voter stays a voter).
		if err := rn.r.AddNonvoter(s.ID, raft.ServerAddress(addr), 0, w.applyTimeout).Error(); err != nil {
			return api.Errorf(api.CodeUnavailable, "move %s to %s in raft's configuration: %v", id, addr, err)
		}
	}
	if rec == addr {
		return nil
	}
	b, err := fsm.Encode(&fsm.NodeAddr{ID: id, Addr: addr})
	if err != nil {
		return api.Wrap(api.CodeInvalidArgument, err)
	}
	return w.applyLocal(ctx, rn, b)
}

// addrMover has the cluster record this node's advertise address when it
// does not yet: it asks the managers (each forwards to its leader) until
// one answers that the leader recorded it, then, on a manager, waits to
// see it in its own state and configuration. On a worker, which cannot
// see the record, one answer ends it; it asks at every start (the leader
// writes nothing when the record already holds the address).
type addrMover struct {
	self, addr string
	// recorded reports whether this manager's state and raft
	// configuration hold addr, and the address its record holds; nil on
	// a worker.
	recorded func() (bool, string)
	// changed is closed at the next change of this manager's state; nil
	// on a worker.
	changed func() <-chan struct{}
	// managers are the managers to ask.
	managers func() []api.PeerAddr
	// ask asks the manager at addr (empty: this manager itself) to have
	// req recorded.
	ask func(ctx context.Context, addr string, req api.NodeAddrRequest) error
	// timeout bounds one request.
	timeout time.Duration
	log     *slog.Logger
}

func (m *addrMover) Run(ctx context.Context) error {
	// A worker cannot see its record: it asks, quietly, at every start.
	// A manager asks only when its state disagrees, and says so when the
	// record held another address (not, say, a join's record on its way).
	level := slog.LevelDebug
	if m.recorded != nil {
		ok, was := m.recorded()
		if ok {
			return nil
		}
		if was != "" {
			level = slog.LevelInfo
			m.log.Info("asking the cluster to record this node's new address", "old", was, "new", m.addr)
		}
	}
	bo := backoff.New(100*time.Millisecond, 3*time.Second)
	for try := 0; ; try++ {
		err := m.askOnce(ctx)
		if err == nil && m.waitRecorded(ctx) {
			m.log.Log(ctx, level, "the cluster recorded this node's address", "addr", m.addr)
			return nil
		}
		if err != nil && try%10 == 9 {
			m.log.Warn("the cluster has not recorded this node's new address yet; other nodes may not reach it", "addr", m.addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(bo.Next()):
		}
	}
}

// askOnce asks each other manager, then this one, until one succeeds.
func (m *addrMover) askOnce(ctx context.Context) error {
	req := api.NodeAddrRequest{Addr: m.addr}
	err := errors.New("no manager known")
	targets := []string{}
	for _, p := range m.managers() {
		if p.NodeID != m.self && p.Addr != "" {
			targets = append(targets, p.Addr)
		}
	}
	if m.recorded != nil {
		targets = append(targets, "") // this manager: when it leads, or knows who does
	}
	for _, t := range targets {
		actx, cancel := context.WithTimeout(ctx, m.timeout)
		err = m.ask(actx, t, req)
		cancel()
		if err == nil || errors.Is(err, fsm.ErrAddrInUse) || api.CodeOf(err) == api.CodeConflict {
			return err
		}
	}
	return err
}

// waitRecorded waits, on a manager, until its state and configuration
// show the address (the leader has recorded it, so they arrive with the
// next entries); false after a while, to ask again.
func (m *addrMover) waitRecorded(ctx context.Context) bool {
	if m.recorded == nil {
		return true
	}
	deadline := time.After(10 * time.Second)
	for {
		ch := m.changed()
		if ok, _ := m.recorded(); ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return false
		case <-ch:
		case <-time.After(200 * time.Millisecond): // the configuration has no channel
		}
	}
}

// newAddrMover builds inc's address mover.
func newAddrMover(n *Node, inc *incarnation) *addrMover {
	m := &addrMover{
		self:     inc.info.NodeID,
		addr:     inc.info.AdvertiseAddr,
		managers: inc.managers,
		timeout:  n.cfg.ForwardTimeout,
		log:      n.logger,
		ask: func(ctx context.Context, addr string, req api.NodeAddrRequest) error {
			if addr == "" {
				return n.apis.node.SetSelfAddr(ctx, api.Peer{NodeID: inc.info.NodeID, Role: inc.info.Role}, req)
			}
			return peerClient(inc, addr).SetSelfAddr(ctx, req)
		},
	}
	if rn := inc.rn(); rn != nil {
		m.changed = rn.fsm.Changed
		m.recorded = func() (bool, string) {
			var rec string
			rn.fsm.Read(func(s *fsm.State, _ uint64) {
				if p, known := s.Nodes[m.self]; known {
					rec = p.Addr
				}
			})
			for _, s := range rn.servers() {
				if string(s.ID) == m.self && string(s.Address) != m.addr {
					return false, rec
				}
			}
			return rec == m.addr, rec
		}
	}
	return m
}
