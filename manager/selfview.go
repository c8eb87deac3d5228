package manager

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/spread"
)

// A worker's view of itself (nodeAPI.Self) is built from two parts: what
// is the same for every worker at a state index (the cluster ID, the
// keyrings in wire form, the CA view, the gossiping nodes arranged for
// sampling), built once per index and shared; and what is the worker's
// own (its record, its grants, its CA step, its sample of gossip peers),
// built per view in O(its grants + gossipSeeds). A change that concerns
// everyone (a key rotation, a node joining) therefore costs the managers
// one shared build plus N small views, not N views of N peers each.

// gossipSeeds bounds the gossip peers a worker's view names. A worker
// needs only a few live members to join the gossip mesh; memberlist
// learns the rest from them (push-pull). The managers come first, then
// the worker's neighbours on the ring of other nodes.
const gossipSeeds = 8

// sharedView is the part of every worker's view at one state index.
// Everything in it is read-only once built: views share its slices.
type sharedView struct {
	index     uint64
	clusterID string
	keyrings  []api.Keyring
	// ca is the CA view for a node that has not converted to a running
	// rotation's new root; caConverted for one that has (nil with no
	// rotation).
	ca, caConverted *api.CAView
	// managers are the managers that gossip, by ID.
	managers []api.PeerAddr
	// ring is the other nodes that gossip, by spread.Hash of their ID.
	ring []ringPeer
}

type ringPeer struct {
	hash uint64
	api.PeerAddr
}

// buildShared builds the shared part of the views of s at index.
func buildShared(s *fsm.State, index uint64) *sharedView {
	v := &sharedView{index: index, keyrings: keyringsToAPI(s.Keys)}
	if s.Cluster != nil {
		v.clusterID = s.Cluster.ID
		if p, err := planOf(s); err == nil {
			v.ca = p.view(false)
			if s.CARotation.InProgress() {
				v.caConverted = p.view(true)
			}
		}
	}
	for id, node := range s.Nodes {
		if node.GossipAddr == "" {
			continue
		}
		pa := api.PeerAddr{NodeID: id, Addr: node.GossipAddr}
		if node.Role == roleManager {
			v.managers = append(v.managers, pa)
		} else {
			v.ring = append(v.ring, ringPeer{hash: spread.Hash(id), PeerAddr: pa})
		}
	}
	slices.SortFunc(v.managers, func(a, b api.PeerAddr) int { return strings.Compare(a.NodeID, b.NodeID) })
	slices.SortFunc(v.ring, func(a, b ringPeer) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return strings.Compare(a.NodeID, b.NodeID)
	})
	return v
}

// caView is the CA view for a node, converted or not.
func (v *sharedView) caView(converted bool) *api.CAView {
	if converted && v.caConverted != nil {
		return v.caConverted
	}
	return v.ca
}

// gossipPeers picks at most gossipSeeds gossip peers for node self: the
// managers first (those ranked first for self when there are more), then
// the nodes after self's place on the ring. The same state gives the same
// sample; a node joining or leaving the ring changes at most one entry of
// another node's sample.
func (v *sharedView) gossipPeers(self string) []api.PeerAddr {
	out := make([]api.PeerAddr, 0, gossipSeeds)
	managers := v.managers
	if len(managers) > gossipSeeds {
		managers = spread.Order(self, managers, func(p api.PeerAddr) string { return p.NodeID })
	}
	for _, m := range managers {
		if len(out) == gossipSeeds {
			return out
		}
		if m.NodeID != self {
			out = append(out, m)
		}
	}
	n := len(v.ring)
	h := spread.Hash(self)
	start := sort.Search(n, func(i int) bool { return v.ring[i].hash >= h })
	for i := 0; i < n && len(out) < gossipSeeds; i++ {
		if p := v.ring[(start+i)%n]; p.NodeID != self {
			out = append(out, p.PeerAddr)
		}
	}
	return out
}

// selfViews caches the shared part of the views at the newest index one
// FSM has been read at. Views are built under the FSM's read lock at its
// current index, which only grows, so one entry is enough.
type selfViews struct {
	mu  sync.Mutex
	fsm *fsm.FSM
	cur *sharedView
	// builds counts the shared parts built (tests).
	builds int
}

// shared returns the shared part for state s of f at index, building it
// if this is a new index. The caller holds f's read lock (fsm.Read).
func (c *selfViews) shared(f *fsm.FSM, s *fsm.State, index uint64) *sharedView {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && c.fsm == f && c.cur.index == index {
		return c.cur
	}
	c.fsm, c.cur = f, buildShared(s, index)
	c.builds++
	return c.cur
}

// selfViewOf builds node id's view of s at index, sharing sh's parts.
func selfViewOf(s *fsm.State, sh *sharedView, id string, removed bool) *api.SelfView {
	view := &api.SelfView{Index: sh.index, ClusterID: sh.clusterID, Removed: removed}
	if p, ok := s.Nodes[id]; ok {
		view.Node = &api.Node{ID: p.ID, Role: p.Role, Addr: p.Addr, CertExpiresAt: p.CertExpiresAt, CreatedAt: p.CreatedAt, GossipAddr: p.GossipAddr}
	}
	view.Keyrings, view.GossipPeers = sh.keyrings, sh.gossipPeers(id)
	view.Secrets = grantedRefs(s, id)
	view.CA = sh.caView(s.CARotation.InProgress() && s.CARotation.Converted[id])
	return view
}

// pollReturn is how long, at least, a worker polls another manager after
// its first choice failed before it tries its first choice again (see
// spread.Picker): workers spread over the managers by their node IDs, and
// come back, spread over a minute, to one that was down.
const pollReturn = time.Minute

// peerIDs returns the node IDs of peers, in order.
func peerIDs(peers []api.PeerAddr) []string {
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = p.NodeID
	}
	return out
}
