package transport

import (
	"bytes"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// GossipConfig configures a node's memberlist.
type GossipConfig struct {
	// NodeID is the member's name.
	NodeID string
	// ClusterID labels every message: it is authenticated data of the
	// encryption, so gossip from another cluster is refused even with
	// our key.
	ClusterID string
	// BindAddr is where memberlist listens, UDP and TCP (port 0: any).
	BindAddr string
	// AdvertiseHost is the host other nodes reach this one at; the port
	// is the bound one.
	AdvertiseHost string
	// Keys and Primary are the keyring to start with.
	Keys    [][]byte
	Primary []byte
	// NewLogger makes memberlist's *log.Logger; observe sees each line and
	// may change its level (Gossip counts decryption failures with it).
	NewLogger func(observe func(slog.Level, string) slog.Level) *log.Logger
	// Tune, if set, adjusts memberlist's configuration (tests shorten its
	// timings).
	Tune func(*memberlist.Config)
}

// Gossip is a node's memberlist: encrypted with the cluster's gossip
// keyring (memberlist's AES-GCM, 32-byte keys), refusing anything
// unencrypted, and telling which nodes are alive.
type Gossip struct {
	ml        *memberlist.Memberlist
	keyring   *memberlist.Keyring
	advertise string
	bindPort  int

	mu    sync.Mutex
	alive map[string]bool // node ID → alive (true) or dead/left (false)

	joining         atomic.Bool
	decryptFailures atomic.Int64
}

// StartGossip starts memberlist as cfg says.
func StartGossip(cfg GossipConfig) (*Gossip, error) {
	kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Primary)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	host, portStr, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: bad port", cfg.BindAddr)
	}
	g := &Gossip{keyring: kr, alive: map[string]bool{}}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = cfg.AdvertiseHost, port
	mc.Keyring = kr
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Label = cfg.ClusterID
	// A node that died may come back at another address (a new IP, a
	// restart with another --gossip-addr): take the new address as soon
	// as the old one is dead, rather than refusing it as a conflict until
	// memberlist forgets the dead node (GossipToTheDeadTime, 30 s).
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.Events = (*gossipEvents)(g)
	if cfg.NewLogger != nil {
		mc.Logger = cfg.NewLogger(g.observe)
	}
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	if g.ml, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	g.bindPort = mc.BindPort
	g.advertise = net.JoinHostPort(cfg.AdvertiseHost, strconv.Itoa(mc.AdvertisePort))
	g.setAlive(cfg.NodeID, true)
	return g, nil
}

// gossipEvents makes Gossip a memberlist.EventDelegate without exporting
// the methods.
type gossipEvents Gossip

func (e *gossipEvents) NotifyJoin(n *memberlist.Node)  { (*Gossip)(e).setAlive(n.Name, true) }
func (e *gossipEvents) NotifyLeave(n *memberlist.Node) { (*Gossip)(e).setAlive(n.Name, false) }
func (e *gossipEvents) NotifyUpdate(*memberlist.Node)  {}

func (g *Gossip) setAlive(id string, alive bool) {
	g.mu.Lock()
	g.alive[id] = alive
	g.mu.Unlock()
}

// observe counts the messages memberlist could not decrypt with any
// installed key, and keeps its complaints about unreachable peers —
// routine while a node is down — at warning level.
func (g *Gossip) observe(level slog.Level, line string) slog.Level {
	if strings.Contains(strings.ToLower(line), "decrypt") {
		g.decryptFailures.Add(1)
	}
	return min(level, slog.LevelWarn)
}

// Addr is where other nodes reach this one's gossip.
func (g *Gossip) Addr() string { return g.advertise }

// BindPort is the port memberlist bound.
func (g *Gossip) BindPort() int { return g.bindPort }

// Members counts the members memberlist sees alive or suspect, this node
// included.
func (g *Gossip) Members() int { return g.ml.NumMembers() }

// MemberNames lists the members memberlist sees alive or suspect.
func (g *Gossip) MemberNames() []string {
	var out []string
	for _, m := range g.ml.Members() {
		out = append(out, m.Name)
	}
	return out
}

// DecryptFailures counts messages that no installed key could decrypt.
func (g *Gossip) DecryptFailures() int64 { return g.decryptFailures.Load() }

// Reachable tells whether gossip sees id alive, and whether it has seen
// id at all.
func (g *Gossip) Reachable(id string) (alive, known bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	alive, known = g.alive[id]
	return alive, known
}

// Keys returns the installed keys and the primary.
func (g *Gossip) Keys() (keys [][]byte, primary []byte) {
	return g.keyring.GetKeys(), g.keyring.GetPrimaryKey()
}

// SetKeys makes the keyring exactly keys with primary: new keys first,
// then the primary, then the old keys go (memberlist refuses to remove
// its primary, and cannot decrypt with a key it does not hold yet).
func (g *Gossip) SetKeys(keys [][]byte, primary []byte) error {
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

// JoinMissing asks memberlist, in the background and one attempt at a
// time, to join the peers (node ID → gossip address) it does not see
// alive.
func (g *Gossip) JoinMissing(peers map[string]string, logger *slog.Logger) {
	var addrs []string
	for id, addr := range peers {
		if alive, _ := g.Reachable(id); !alive {
			addrs = append(addrs, addr)
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

// Shutdown stops memberlist; graceful tells the others first, so they
// see the node leave rather than fail.
func (g *Gossip) Shutdown(graceful bool) {
	if graceful {
		_ = g.ml.Leave(time.Second)
	}
	_ = g.ml.Shutdown()
}

// Join joins the members at addrs now and returns how many it reached.
func (g *Gossip) Join(addrs []string) (int, error) { return g.ml.Join(addrs) }
