package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// ConnTracker knows every open authenticated connection of a node — raft
// and node API, accepted and (for raft) dialed — with the peer and the
// protocol, so that Revalidate can close at once those whose peer is no
// longer allowed: a node removed or demoted, a certificate that no longer
// chains to a root trusted now. A handshake checks a peer once; the
// tracker makes that check hold for the connection's whole life.
//
// The zero value is not usable; make one with NewConnTracker. It is safe
// for concurrent use.
type ConnTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]tracked
}

type tracked struct {
	proto string
	id    ca.Identity
	leaf  *x509.Certificate
	chain []*x509.Certificate // intermediates the peer presented
}

// NewConnTracker returns an empty tracker.
func NewConnTracker() *ConnTracker {
	return &ConnTracker{conns: map[net.Conn]tracked{}}
}

// trackers maps each tracked connection to its tracker, so that code that
// sees only the connection (the HTTP server, when a connection ends) can
// forget it.
var trackers sync.Map // net.Conn → *ConnTracker

// add records c, whose handshake completed with proto and peer
// certificates certs (leaf first).
func (t *ConnTracker) add(c net.Conn, proto string, id ca.Identity, certs []*x509.Certificate) {
	if t == nil || len(certs) == 0 {
		return
	}
	t.mu.Lock()
	t.conns[c] = tracked{proto: proto, id: id, leaf: certs[0], chain: certs[1:]}
	t.mu.Unlock()
	trackers.Store(c, t)
}

// remove forgets c.
func (t *ConnTracker) remove(c net.Conn) {
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	trackers.Delete(c)
}

// untrack forgets c in whichever tracker holds it.
func untrack(c net.Conn) {
	if t, ok := trackers.Load(c); ok {
		t.(*ConnTracker).remove(c)
	}
}

// Len returns how many connections are tracked.
func (t *ConnTracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// revalidateAt is when Revalidate checks a connection's certificate:
// now, unless now is before the certificate's NotBefore. The handshake
// accepted that certificate, so a clock that reads earlier than its
// start has jumped back; judged at such a clock every connection to a
// recently issued certificate would close, and a leader would lose its
// quorum over its own clock (the chaos soak saw it). New handshakes are
// still checked at the node's clock. Expiry and a retired root still
// close a connection.
func revalidateAt(leaf *x509.Certificate, now time.Time) time.Time {
	if leaf != nil && now.Before(leaf.NotBefore) {
		return leaf.NotBefore
	}
	return now
}

// Revalidate checks every tracked connection again, as a new handshake
// would be checked now: the peer's certificate must chain to a root in
// creds now, and authorize (nil allows all) must allow the peer on the
// connection's protocol. now is the node's wall clock (Config.Now). It
// closes every connection that fails and returns how many it closed,
// logging each at warn level.
func (t *ConnTracker) Revalidate(creds *CredStore, authorize AuthorizeFunc, now time.Time, log *slog.Logger) int {
	if t == nil {
		return 0
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cur := creds.Load()
	type bad struct {
		c   net.Conn
		tr  tracked
		err error
	}
	var closing []bad
	t.mu.Lock()
	for c, tr := range t.conns {
		var err error
		if cur == nil || cur.Roots == nil {
			err = ErrNoCredentials
		} else if _, verr := ca.Verify(tr.leaf, tr.chain, cur.Roots, revalidateAt(tr.leaf, now)); verr != nil {
			err = fmt.Errorf("its certificate no longer verifies: %w", verr)
		} else if authorize != nil {
			err = authorize(tr.proto, tr.id, tr.leaf)
		}
		if err != nil {
			closing = append(closing, bad{c, tr, err})
			delete(t.conns, c)
		}
	}
	t.mu.Unlock()
	for _, b := range closing {
		trackers.Delete(b.c)
		_ = b.c.Close()
		log.Warn("transport: closed a connection whose peer is no longer allowed", "proto", b.tr.proto, "peer", b.tr.id.NodeID, "cert_role", b.tr.id.Role, "remote", b.c.RemoteAddr().String(), "reason", b.err.Error())
	}
	return len(closing)
}

// trackTLS records a handshaken *tls.Conn.
func (t *ConnTracker) trackTLS(c *tls.Conn, proto string) {
	if t == nil {
		return
	}
	cs := c.ConnectionState()
	id, ok := PeerIdentity(&cs)
	if !ok {
		return
	}
	t.add(c, proto, id, cs.PeerCertificates)
}
