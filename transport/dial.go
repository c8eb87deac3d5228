package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/ca"
)

// streamLayer is a raft.StreamLayer over a Mux's raft listener.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	cfg       Config
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// NewStreamLayer returns a raft.StreamLayer that accepts on m's ProtoRaft
// listener and dials ProtoRaft with cfg's credentials, requiring the server
// to be a manager of the same cluster that cfg.Authorize allows. Addr returns
// advertise (m.Addr() if nil). Closing the stream layer closes the raft
// listener, not the Mux.
func NewStreamLayer(m *Mux, advertise net.Addr, cfg Config) raft.StreamLayer {
	if advertise == nil {
		advertise = m.Addr()
	}
	cfg = cfg.withDefaults()
	return &streamLayer{Listener: m.Listener(ProtoRaft), advertise: advertise, cfg: cfg}
}

// Accept returns the next raft connection, guarded: raft reads a request
// only after its header's server ID has been found to be the peer's
// certificate CN and cfg.Authorize has allowed the peer again, for that
// request (see raftGuard).
func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("accept raft: %w: not a TLS connection", ErrPeerRefused)
	}
	cs := tc.ConnectionState()
	id, ok := PeerIdentity(&cs)
	if !ok {
		tc.Close()
		return nil, fmt.Errorf("accept raft: %w: no peer identity", ErrPeerRefused)
	}
	var check func(ca.Identity) error
	if s.cfg.Authorize != nil {
		leaf := cs.PeerCertificates[0]
		check = func(id ca.Identity) error { return s.cfg.Authorize(ProtoRaft, id, leaf) }
	}
	g := newRaftGuard(tc, id, check, s.cfg.Logger, s.cfg.Conns)
	s.cfg.Conns.add(g, ProtoRaft, id, cs.PeerCertificates)
	return g, nil
}

// trackedConn is a dialed connection a ConnTracker knows; Close forgets it.
type trackedConn struct {
	*tls.Conn
	tracker *ConnTracker
}

func (c *trackedConn) Close() error {
	c.tracker.remove(c)
	return c.Conn.Close()
}

// Dial connects to a raft peer; timeout bounds the dial and handshake. An
// address from a RaftAddressBook ("ID@HOST:PORT") also requires the peer's
// certificate to name node ID.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	want, addr, named := strings.Cut(string(address), "@")
	if !named {
		addr = want
	}
	c, err := dialProto(context.Background(), s.cfg, addr, ProtoRaft, timeout)
	if err != nil {
		return nil, err
	}
	cs := c.ConnectionState()
	id, ok := PeerIdentity(&cs)
	if named && (!ok || id.NodeID != want) {
		c.Close()
		return nil, fmt.Errorf("dial raft %s: %w: the node there is %s, not %s", addr, ErrWrongPeer, id.NodeID, want)
	}
	if s.cfg.Conns == nil {
		return c, nil
	}
	tc := &trackedConn{Conn: c, tracker: s.cfg.Conns}
	s.cfg.Conns.add(tc, ProtoRaft, id, cs.PeerCertificates)
	return tc, nil
}

// ErrWrongPeer is a raft dial that reached another node than the one the
// RPC is for: the server it was for has gone, and another took its address.
var ErrWrongPeer = errors.New("wrong raft peer")

// RaftAddressBook is a raft.ServerAddressProvider (NetworkTransportConfig.
// ServerAddressProvider) whose addresses name the server an RPC is for, so
// the stream layer reaches that server or none. Without it raft may deliver
// an RPC meant for a server it has just removed to a new server at the same
// address: its last replication to the removed server installed a stale
// snapshot, and the stale configuration in it, on the new one.
type RaftAddressBook struct {
	mu     sync.Mutex
	known  map[raft.ServerID]raft.ServerAddress
	latest func() []raft.Server
}

// NewRaftAddressBook returns an empty book; SetConfiguration connects it to
// raft.
func NewRaftAddressBook() *RaftAddressBook {
	return &RaftAddressBook{known: map[raft.ServerID]raft.ServerAddress{}}
}

// SetConfiguration gives the book raft's latest configuration. Servers it
// has seen stay in the book after they leave the configuration, so RPCs to
// them still name them.
func (b *RaftAddressBook) SetConfiguration(latest func() []raft.Server) {
	b.mu.Lock()
	b.latest = latest
	b.mu.Unlock()
}

// ServerAddr implements raft.ServerAddressProvider.
func (b *RaftAddressBook) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.latest != nil {
		for _, s := range b.latest() {
			b.known[s.ID] = s.Address
		}
	}
	addr, ok := b.known[id]
	if !ok {
		return "", fmt.Errorf("no address known for raft server %s", id)
	}
	return raft.ServerAddress(string(id) + "@" + string(addr)), nil
}

// asNetConn keeps a nil *tls.Conn from becoming a non-nil net.Conn.
func asNetConn(c *tls.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

var errPlainHTTP = errors.New("plain http is not allowed; use an https URL")

func refusePlain(context.Context, string, string) (net.Conn, error) { return nil, errPlainHTTP }

// NewAPIClient returns an HTTP client for the node-to-node API: https URLs
// whose host is a node's listen address. Each connection negotiates ProtoAPI,
// presents cfg's current credentials and requires the server to be a manager
// of our cluster that cfg.Authorize allows. Connections are pooled.
func NewAPIClient(cfg Config) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: refusePlain,
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return asNetConn(dialProto(ctx, cfg, addr, ProtoAPI, 0))
		},
		MaxIdleConnsPerHost: 64, // followers forward many writes at once; each new conn is a TLS handshake
		IdleConnTimeout:     90 * time.Second,
	}}
}

// DialJoin dials addr with ProtoJoin, without a client certificate. Before it
// returns, and so before the caller can send anything, it checks that the
// server's chain contains a CA certificate whose ca.DigestOf is caDigest and
// that the server's certificate verifies against that CA as a manager of the
// CA's cluster; otherwise the error wraps ErrCAMismatch. It returns the
// connection and the pinned root. timeout, if positive, bounds the dial and
// handshake.
func DialJoin(ctx context.Context, addr, caDigest string, timeout time.Duration) (*tls.Conn, *x509.Certificate, error) {
	return DialJoinAt(ctx, addr, caDigest, timeout, time.Now)
}

// DialJoinAt is DialJoin checking the server's certificate dates against
// now, the node's wall clock (Config.Now).
func DialJoinAt(ctx context.Context, addr, caDigest string, timeout time.Duration, now func() time.Time) (*tls.Conn, *x509.Certificate, error) {
	if now == nil {
		now = time.Now
	}
	if !ca.ValidDigest(caDigest) {
		return nil, nil, fmt.Errorf("dial join %s: %w: CA digest is not 64 lowercase hex characters", addr, ca.ErrMalformedToken)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var root *x509.Certificate
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{ProtoJoin},
		InsecureSkipVerify: true, // VerifyConnection pins the CA by digest instead
		VerifyConnection: func(cs tls.ConnectionState) error {
			r, err := verifyJoinServer(cs, caDigest, now())
			root = r
			return err
		},
	}
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial join %s: %w", addr, err)
	}
	return c.(*tls.Conn), root, nil
}

// NewJoinClient returns an HTTP client whose connections are made with
// DialJoinAt(caDigest, timeout, now), for join requests to https URLs; now
// is the node's wall clock (nil: time.Now). It does not keep connections
// alive or follow redirects.
func NewJoinClient(caDigest string, timeout time.Duration, now func() time.Time) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: refusePlain,
			DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				c, _, err := DialJoinAt(ctx, addr, caDigest, timeout, now)
				return asNetConn(c, err)
			},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
