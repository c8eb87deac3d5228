package manager

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/overlaykeys"
)

// keyView is what a node knows of the data-plane keys, and where the other
// nodes gossip. Managers build it from their replicated state; workers
// from what a manager tells them over the node API.
type keyView struct {
	rings overlaykeys.Keyrings
	// peers are the other nodes that have a gossip address, by ID.
	peers []api.PeerAddr
	// selfGossip is this node's gossip address as the cluster records it.
	selfGossip string
}

func (v *keyView) equal(o *keyView) bool {
	if v == nil || o == nil {
		return v == o
	}
	for _, s := range overlaykeys.Subsystems {
		if !v.rings.Ring(s).Equal(o.rings.Ring(s)) {
			return false
		}
	}
	return v.selfGossip == o.selfGossip && slices.Equal(v.peers, o.peers)
}

// keyBox holds an incarnation's current keyView and wakes waiters when it
// changes or the incarnation ends.
type keyBox struct {
	mu     sync.Mutex
	v      *keyView
	ch     chan struct{}
	closed bool
}

func newKeyBox() *keyBox { return &keyBox{ch: make(chan struct{})} }

// get returns the current view (nil before the first), a channel closed at
// the next change, and whether the incarnation has ended.
func (b *keyBox) get() (*keyView, <-chan struct{}, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.v, b.ch, b.closed
}

func (b *keyBox) set(v *keyView) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.v.equal(v) {
		return
	}
	b.v = v
	close(b.ch)
	b.ch = make(chan struct{})
}

func (b *keyBox) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.ch)
	}
}

// keyViewOf reads the view for node self from the replicated state.
func keyViewOf(s *fsm.State, self string) *keyView {
	v := &keyView{rings: s.Keys.Clone()}
	for _, node := range s.SortedNodes() {
		switch {
		case node.ID == self:
			v.selfGossip = node.GossipAddr
		case node.GossipAddr != "":
			v.peers = append(v.peers, api.PeerAddr{NodeID: node.ID, Addr: node.GossipAddr})
		}
	}
	return v
}

// matches reports, without allocating, whether v is still the view of s
// for node self: the same keyrings and the same gossip addresses. Most
// applied entries (secrets) change neither.
func (v *keyView) matches(s *fsm.State, self string) bool {
	if v == nil {
		return false
	}
	for _, sub := range overlaykeys.Subsystems {
		if !v.rings.Ring(sub).Equal(s.Keys.Ring(sub)) {
			return false
		}
	}
	peers := 0
	for id, node := range s.Nodes {
		switch {
		case id == self:
			if node.GossipAddr != v.selfGossip {
				return false
			}
		case node.GossipAddr != "":
			peers++
			i, ok := slices.BinarySearchFunc(v.peers, id, func(p api.PeerAddr, id string) int { return strings.Compare(p.NodeID, id) })
			if !ok || v.peers[i].Addr != node.GossipAddr {
				return false
			}
		}
	}
	return peers == len(v.peers)
}

// keyringsToAPI turns rings into the wire form, with material: for the
// node API (workers) and the control socket only.
func keyringsToAPI(rings overlaykeys.Keyrings) []api.Keyring {
	var out []api.Keyring
	for _, s := range overlaykeys.Subsystems {
		if r := rings.Ring(s); r != nil {
			out = append(out, *keyringToAPI(s, r))
		}
	}
	return out
}

func keyringToAPI(s overlaykeys.Subsystem, r *overlaykeys.Ring) *api.Keyring {
	primary, _ := r.Primary()
	k := &api.Keyring{Subsystem: string(s), Keys: []api.Key{}}
	for _, key := range r.Keys {
		k.Keys = append(k.Keys, api.Key{KeyID: key.ID, Lamport: key.Lamport, CreatedAt: key.CreatedAt, Primary: key.ID == primary.ID, Key: slices.Clone(key.Material)})
	}
	return k
}

// keyringsFromAPI is a worker's reading of keyringsToAPI.
func keyringsFromAPI(in []api.Keyring) overlaykeys.Keyrings {
	out := overlaykeys.Keyrings{}
	for _, k := range in {
		s := overlaykeys.Subsystem(k.Subsystem)
		if !s.Valid() {
			continue
		}
		r := &overlaykeys.Ring{}
		for _, key := range k.Keys {
			r.Keys = append(r.Keys, overlaykeys.Key{ID: key.KeyID, Material: key.Key, Lamport: key.Lamport, CreatedAt: key.CreatedAt})
		}
		out[s] = r
	}
	return out
}

// Keys answers `keys ls`: the keys this node holds, never their material.
func (a *keysAPI) Keys(ctx context.Context) ([]api.KeyInfo, error) {
	inc := a.current()
	if inc == nil {
		return nil, api.ErrUninitialized
	}
	v, _, _ := inc.keys.get()
	if rn := inc.rn(); rn != nil {
		applied := rn.fsm.Index()
		if catching, target := rn.catchUp.progress(applied); catching {
			return nil, errCatchingUp(applied, target)
		}
		// The state itself, not the key feed's copy, which follows it a
		// moment later.
		rn.fsm.Read(func(s *fsm.State, _ uint64) { v = &keyView{rings: s.Keys.Clone()} })
	}
	out := []api.KeyInfo{}
	if v != nil {
		for _, k := range v.rings.Info() {
			out = append(out, api.KeyInfo{Subsystem: string(k.Subsystem), KeyID: k.ID, Lamport: k.Lamport, CreatedAt: k.CreatedAt, Primary: k.Primary})
		}
	}
	if len(out) == 0 {
		return nil, errNoKeysYet
	}
	return out, nil
}

// errNoKeysYet answers keys ls on a node that holds no data-plane key
// yet: a worker that has not heard from a manager, or a cluster whose
// leader has not made its first keys.
var errNoKeysYet = api.Errorf(api.CodeUnavailable, "this node holds no data-plane keys yet (a worker gets them from a manager, a new cluster's leader makes them within seconds); try again in a moment")

// WatchKeyring serves a local data plane the ipsec keyring, with material,
// on the control socket. The gossip keyring is the node's own memberlist's
// and never leaves the daemon.
func (a *keysAPI) WatchKeyring(ctx context.Context, subsystem string, watch bool, send func(*api.Keyring) error) error {
	switch overlaykeys.Subsystem(subsystem) {
	case overlaykeys.IPsec:
	case overlaykeys.Gossip:
		return api.Errorf(api.CodePermissionDenied, "the gossip keyring is never served: only this node's memberlist uses it")
	default:
		return api.Errorf(api.CodeNotFound, "no keyring %q (subsystems: gossip, ipsec)", subsystem)
	}
	inc := a.current()
	if inc == nil {
		return api.ErrUninitialized
	}
	if rn := inc.rn(); rn != nil && !watch {
		// A one-off read of a catching-up manager's view could be old.
		applied := rn.fsm.Index()
		if catching, target := rn.catchUp.progress(applied); catching {
			return errCatchingUp(applied, target)
		}
	}
	var last *overlaykeys.Ring
	for {
		v, ch, closed := inc.keys.get()
		if closed {
			return fmt.Errorf("the node left its cluster")
		}
		var ring *overlaykeys.Ring
		if v != nil {
			ring = v.rings.Ring(overlaykeys.IPsec)
		}
		if rn := inc.rn(); ring == nil && !watch && rn != nil {
			// As keys ls: the state, which the key feed follows a moment later.
			rn.fsm.Read(func(s *fsm.State, _ uint64) { ring = s.Keys.Clone().Ring(overlaykeys.IPsec) })
		}
		switch {
		case ring == nil && !watch:
			return api.Errorf(api.CodeUnavailable, "this node has no ipsec keys yet")
		case ring != nil && !ring.Equal(last):
			if err := send(keyringToAPI(overlaykeys.IPsec, ring)); err != nil {
				return err
			}
			if !watch {
				return nil
			}
			last = ring
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
