package manager

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/transport"
)

// access decides who may speak to this node now, on every protocol
// (docs/DESIGN-NOTES.md, "Who may speak"): the transport asks it at every
// handshake and for every raft RPC, the node API for every request, and
// its watch closes open connections that the state no longer allows. It
// caches each allowed peer until the access generation moves.
//
// It depends on the raft this node runs now (the replicated state and
// raft's configuration; none on a worker, which authorizes its managers by
// certificate alone) and on a check of a caller's chain against the
// current roots.
type access struct {
	// raft returns the raft this node runs now, nil if none.
	raft func() peerSource
	// trusted reports whether a node API caller's chain verifies against
	// this node's current roots.
	trusted func(*tls.ConnectionState) bool
	// now is the clock for certificate and deny-list times.
	now func() time.Time

	// ok caches, by authKey, the state and access generation at which a
	// peer was last allowed.
	ok sync.Map
}

// peerSource is raft as access sees it (*raftNode).
type peerSource interface {
	// state is the replicated state machine.
	state() *fsm.FSM
	// servers is raft's latest configuration.
	servers() []raft.Server
}

func (rn *raftNode) state() *fsm.FSM { return rn.fsm }

// newAccess returns the access component of the node whose running
// incarnation current returns.
func newAccess(current func() *incarnation) *access {
	return &access{
		raft: func() peerSource {
			if inc := current(); inc != nil {
				if rn := inc.rn(); rn != nil {
					return rn
				}
			}
			return nil
		},
		trusted: func(cs *tls.ConnectionState) bool { return peerTrusted(current(), cs) },
		now:     time.Now,
	}
}

// authKey names a peer's certificate on a protocol, for access.ok.
type authKey struct {
	proto, node string
	role        ca.Role
	serial      string
}

// grant is when a peer was allowed: which state, at which generation.
type grant struct {
	state *fsm.FSM
	gen   uint64
}

// authorize decides, on every handshake in both directions, on every raft
// RPC received, and again for every open connection when membership or
// the roots change (watch), whether a peer may use proto now. The
// certificate only says who the peer is; what it may do comes from the
// replicated state (docs/DESIGN-NOTES.md, "Who may speak"):
//
//   - node API: the node exists and is not removed; a demoted manager's
//     certificate counts as a worker's.
//   - raft: the node is a manager in the state and a server in raft's
//     latest configuration (fsm.State.RaftPeer).
//
// Workers hold no state and authorize their managers by certificate.
func (a *access) authorize(proto string, id ca.Identity, leaf *x509.Certificate) error {
	src := a.raft()
	if src == nil {
		return nil
	}
	err := a.authorizeManager(src, proto, id, leaf)
	if err != nil {
		label := "api"
		if proto == transport.ProtoRaft {
			label = "raft"
		}
		peerRefusals.WithLabelValues(label).Inc()
	}
	return err
}

func (a *access) authorizeManager(src peerSource, proto string, id ca.Identity, leaf *x509.Certificate) error {
	// A peer allowed once stays allowed until the access generation moves
	// (a node added, removed, given a role; a CA rotation's start or end):
	// the raft guard asks on every RPC, and must not wait for the FSM's
	// lock while an entry is applied. Refusals are never cached: a node
	// refused now (say, before raft's configuration names it) is asked
	// about again.
	key := authKey{proto: proto, node: id.NodeID, role: id.Role}
	if leaf != nil {
		key.serial = leaf.SerialNumber.String()
	}
	f := src.state()
	g := grant{state: f, gen: f.AccessGeneration()}
	if v, ok := a.ok.Load(key); ok && v.(grant) == g {
		return nil
	}
	err := a.decide(src, proto, id, leaf)
	if err == nil {
		a.ok.Store(key, g)
	}
	return err
}

// decide is the access decision itself, uncached.
func (a *access) decide(src peerSource, proto string, id ca.Identity, leaf *x509.Certificate) error {
	if proto != transport.ProtoRaft {
		_, err := peerRoleIn(src.state(), id, a.now())
		if errors.Is(err, fsm.ErrNodeRemoved) {
			// Let it connect to be told, on every route, that it was
			// removed (api.ErrRemoved): it is served nothing else.
			return nil
		}
		return err
	}
	inConfig := false
	for _, s := range src.servers() {
		if string(s.ID) == id.NodeID {
			inConfig = true
			break
		}
	}
	var issued time.Time
	if leaf != nil {
		issued = leaf.NotBefore.Add(ca.LeafBackdate)
	}
	f := src.state()
	appliedAt := f.AppendedAt()
	var err error
	f.Read(func(s *fsm.State, _ uint64) {
		err = s.RaftPeer(id.NodeID, id.Role, issued, inConfig, appliedAt, unknownPeerMargin, a.now())
	})
	return err
}

// authorizeOpen is authorize for a connection already open: a removed
// node loses it too (a new one only tells it that it was removed).
func (a *access) authorizeOpen(proto string, id ca.Identity, leaf *x509.Certificate) error {
	if err := a.authorize(proto, id, leaf); err != nil {
		return err
	}
	if proto == transport.ProtoRaft {
		return nil
	}
	_, err := a.peerRole(id)
	return err
}

// unknownPeerMargin is how much older than the newest entry this manager
// has applied a raft peer's certificate may be, for a node this manager
// does not know yet, before it is refused. It is zero: a certificate the
// cluster issued is newer than every entry before the one that records
// its node, by the clock of the leader that issued it and appended both;
// with a promotion (the node issues its own manager certificate) the
// clocks differ, and a skewed one can only make a manager that is behind
// refuse the promoted node until it catches up from another.
const unknownPeerMargin = 0

// peerRole returns the role the cluster gives a peer now, or why it is
// refused: removed, or not a member. A manager certificate of a node the
// cluster has since demoted counts as a worker's: the node may still
// renew onto a worker certificate, and may do nothing only managers may.
func (a *access) peerRole(id ca.Identity) (ca.Role, error) {
	src := a.raft()
	if src == nil {
		return id.Role, nil
	}
	return peerRoleIn(src.state(), id, a.now())
}

func peerRoleIn(f *fsm.FSM, id ca.Identity, now time.Time) (ca.Role, error) {
	var role ca.Role
	var err error
	f.Read(func(s *fsm.State, _ uint64) {
		role, err = s.PeerRole(id.NodeID, id.Role, now)
	})
	return role, err
}

// watch closes every open connection of a peer that is no longer
// allowed, at once, whenever an applied command may have changed who may
// do what (a node removed, demoted, added; a CA rotation's end) or this
// node's trusted roots change. It runs while inc runs rn, until ctx ends.
func (a *access) watch(ctx context.Context, inc *incarnation, rn *raftNode, logger *slog.Logger) {
	gen, creds := rn.fsm.AccessGeneration(), inc.creds.Load()
	log := logger.With("component", "transport")
	for {
		changed := rn.fsm.Changed()
		if g, c := rn.fsm.AccessGeneration(), inc.creds.Load(); g != gen || c != creds {
			gen, creds = g, c
			a.ok.Clear() // every entry is of an older generation now
			if closed := inc.conns.Revalidate(inc.creds, a.authorizeOpen, inc.tcfg.Now(), log); closed > 0 {
				accessClosed.Add(float64(closed))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-inc.credsChanged():
		}
	}
}

// peerOf reads the node API caller's identity from its certificate and
// authorizes it again for each request: a connection opened before a node
// was removed or demoted, or before its root was rotated away, serves it
// nothing after.
func (a *access) peerOf(r *http.Request) (api.Peer, bool) {
	id, ok := transport.PeerIdentity(r.TLS)
	if !ok {
		return api.Peer{}, false
	}
	role, err := a.peerRole(id)
	if errors.Is(err, fsm.ErrNodeRemoved) {
		return api.Peer{NodeID: id.NodeID, Role: id.Role, Removed: true}, true
	}
	if err != nil || !a.trusted(r.TLS) {
		return api.Peer{}, false
	}
	return api.Peer{NodeID: id.NodeID, Role: role}, true
}
