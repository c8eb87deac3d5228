package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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

// keysFromFSM keeps a manager's key view in step with its state.
func (n *Node) keysFromFSM(ctx context.Context, inc *incarnation, rn *raftNode) {
	for {
		ch := rn.fsm.Changed()
		var v *keyView
		current, _, _ := inc.keys.get()
		rn.fsm.Read(func(s *fsm.State, _ uint64) {
			if s.Cluster != nil && !current.matches(s, inc.info.NodeID) {
				v = keyViewOf(s, inc.info.NodeID)
			}
		})
		if v != nil {
			inc.keys.set(v)
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
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

// keysNow is the clock of the key-rotation loop; tests move it forward.
func (n *Node) keysNow() time.Time {
	if f, ok := n.keyClock.Load().(func() time.Time); ok {
		return f()
	}
	return time.Now()
}

// kickKeys makes the rotation loop look at the schedule now.
func (n *Node) kickKeys() {
	select {
	case n.keyKick <- struct{}{}:
	default:
	}
}

// rotateKeysLoop runs on every manager; only the leader, once its
// leader.ready entry is applied (so its state is current), rotates.
func (n *Node) rotateKeysLoop(ctx context.Context, rn *raftNode) {
	for {
		wait := time.Second
		if rn.isLeader() && rn.readyTerm.Load() == rn.r.CurrentTerm() {
			wait = min(wait, n.rotateDueKeys(ctx, rn))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-n.keyKick:
			t.Stop()
		}
	}
}

// rotateDueKeys rotates every ring that is due and returns how long until
// the next one is.
func (n *Node) rotateDueKeys(ctx context.Context, rn *raftNode) time.Duration {
	now := n.keysNow()
	next := now.Add(time.Hour)
	var rots []overlaykeys.Rotation
	var genErr error
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster == nil {
			return
		}
		for _, sub := range overlaykeys.Subsystems {
			ring := s.Keys.Ring(sub)
			due, at := ring.Due(s.Cluster.Settings.KeyRotation, now)
			if !due {
				next = minTime(next, at)
				continue
			}
			rot, err := overlaykeys.NewRotation(sub, ring, now, nil)
			if err != nil {
				genErr = err
				continue
			}
			rots = append(rots, rot)
		}
	})
	if genErr != nil {
		n.logger.Error("cannot make a data-plane key", "err", genErr)
	}
	for _, rot := range rots {
		b, err := fsm.Encode(&fsm.KeysRotate{Rotation: rot})
		if err == nil {
			err = n.writes.applyLocal(ctx, rn, b)
		}
		switch {
		case errors.Is(err, overlaykeys.ErrStale):
			// Another leader rotated first: nothing to do.
		case err != nil:
			n.logger.Warn("data-plane key rotation failed; retrying", "subsystem", rot.Subsystem, "err", err)
			return time.Second
		default:
			newest := rot.Keys[len(rot.Keys)-1]
			n.logger.Info("data-plane keys rotated", "subsystem", rot.Subsystem, "key_id", newest.ID, "lamport", newest.Lamport)
			metricKeyRotated(string(rot.Subsystem))
		}
	}
	if len(rots) > 0 {
		return 0 // look again at once: the next due time moved
	}
	return max(next.Sub(now), 0)
}

// purgeKeys replaces every key of both data-plane keyrings at once, as the
// leader does when it removes node id: the keys the node held then open
// nothing sent afterwards. A rotation that races with the purge (another
// leader's, the schedule's) is followed by a fresh purge.
func (n *Node) purgeKeys(ctx context.Context, rn *raftNode, id string) error {
	for _, sub := range overlaykeys.Subsystems {
		var err error
		for range 3 {
			var rot overlaykeys.Rotation
			var genErr error
			rn.fsm.Read(func(s *fsm.State, _ uint64) {
				rot, genErr = overlaykeys.NewPurge(sub, s.Keys.Ring(sub), n.keysNow(), nil)
			})
			if genErr != nil {
				return genErr
			}
			var b []byte
			if b, err = fsm.Encode(&fsm.KeysRotate{Rotation: rot}); err == nil {
				err = n.writes.applyLocal(ctx, rn, b)
			}
			if !errors.Is(err, overlaykeys.ErrStale) {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("%s keyring: %w", sub, err)
		}
		metricKeyRotated(string(sub))
	}
	n.logger.Info("data-plane keyrings replaced: a node was removed", "removed", id)
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Keys answers `keys ls`: the keys this node holds, never their material.
func (a *keysAPI) Keys(ctx context.Context) ([]api.KeyInfo, error) {
	inc := a.current()
	if inc == nil {
		return nil, api.ErrUninitialized
	}
	out := []api.KeyInfo{}
	v, _, _ := inc.keys.get()
	if v == nil {
		return out, nil
	}
	for _, k := range v.rings.Info() {
		out = append(out, api.KeyInfo{Subsystem: string(k.Subsystem), KeyID: k.ID, Lamport: k.Lamport, CreatedAt: k.CreatedAt, Primary: k.Primary})
	}
	return out, nil
}

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
