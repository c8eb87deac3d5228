package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mux accepts TCP connections on one address, runs each TLS handshake in its
// own goroutine, checks the peer for the negotiated protocol, and hands the
// connection to that protocol's listener.
type Mux struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	subsMu sync.Mutex
	subs   map[string]*subListener

	// handshakes counts handshakes in progress, in all and per IP.
	handshakes *counter
	// peers bounds the connections and requests the HTTP servers serve.
	peers *peerLimiter

	closeOnce sync.Once
	closeErr  error
}

// Listen listens on the TCP address addr and starts accepting connections.
func Listen(addr string, cfg Config) (*Mux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{cfg: cfg, log: cfg.Logger, ln: ln, ctx: ctx, cancel: cancel, subs: map[string]*subListener{}}
	lim := cfg.Limits.withDefaults()
	m.handshakes = newCounter(lim.MaxHandshakes, lim.MaxHandshakesPerIP, LimitHandshakes, LimitHandshakesPerIP)
	m.peers = newPeerLimiter(cfg)
	for _, p := range []string{ProtoRaft, ProtoAPI, ProtoJoin} {
		m.subs[p] = &subListener{mux: m, proto: p, ch: make(chan *tls.Conn), closed: make(chan struct{})}
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr returns the address the Mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Listener returns the listener for proto (ProtoRaft, ProtoAPI or
// ProtoJoin), opening it: from now on clients may negotiate proto. Every call
// for a proto returns the same listener until that listener is closed; a
// call after that opens a new one (a node that stops raft on demotion
// starts it again on promotion). Its Accept returns *tls.Conn values
// already handshaken and authorized; its Close stops offering proto and does
// not close the Mux. For an unknown proto, the listener's Accept fails.
func (m *Mux) Listener(proto string) net.Listener {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	s, ok := m.subs[proto]
	if !ok {
		return &badListener{addr: m.ln.Addr(), err: fmt.Errorf("%w: unknown protocol %q", ErrProtocol, proto)}
	}
	select {
	case <-s.closed:
		if m.ctx.Err() == nil {
			s = &subListener{mux: m, proto: proto, ch: make(chan *tls.Conn), closed: make(chan struct{})}
			m.subs[proto] = s
		}
	default:
	}
	s.open.Store(true)
	return s
}

// sub returns the current listener for proto.
func (m *Mux) sub(proto string) (*subListener, bool) {
	m.subsMu.Lock()
	defer m.subsMu.Unlock()
	s, ok := m.subs[proto]
	return s, ok
}

// Close closes the TCP listener and every sub-listener, aborts handshakes in
// progress and waits for the Mux's goroutines to exit. Connections already
// accepted are not closed.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		m.closeErr = m.ln.Close()
		m.subsMu.Lock()
		for _, s := range m.subs {
			s.Close()
		}
		m.subsMu.Unlock()
	})
	m.wg.Wait()
	return m.closeErr
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. out of file descriptors): back off, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.log.Warn("transport: accept failed", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-m.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		ip := hostOf(c.RemoteAddr())
		if limit := m.handshakes.acquire(ip); limit != "" {
			// Refused before any TLS: a peer that opens connections and
			// stalls holds at most this many descriptors.
			m.cfg.onLimit(limit)
			m.log.Debug("transport: connection refused: too many handshakes in progress", "remote", c.RemoteAddr().String(), "limit", limit)
			_ = c.Close()
			continue
		}
		m.wg.Add(1)
		go m.handle(c, ip)
	}
}

// handle handshakes one connection and delivers it to its listener.
func (m *Mux) handle(raw net.Conn, ip string) {
	defer m.wg.Done()
	timeout := m.cfg.HandshakeTimeout
	_ = raw.SetDeadline(time.Now().Add(timeout))
	ctx, cancel := context.WithTimeout(m.ctx, timeout)
	defer cancel()
	conn := tls.Server(raw, &tls.Config{GetConfigForClient: m.configForClient})
	err := conn.HandshakeContext(ctx)
	m.handshakes.release(ip)
	if err != nil {
		if m.ctx.Err() == nil && (isTimeout(err) || errors.Is(ctx.Err(), context.DeadlineExceeded)) {
			m.cfg.onLimit(LimitHandshakeTimeout)
		}
		if errors.Is(err, ErrCertTime) {
			m.log.Warn("transport: connection refused: a clock is off", "remote", raw.RemoteAddr().String(), "err", err)
		} else {
			m.log.Debug("transport: connection refused", "remote", raw.RemoteAddr().String(), "err", err)
		}
		_ = conn.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	proto := conn.ConnectionState().NegotiatedProtocol
	if proto == ProtoAPI {
		// Raft connections are tracked by the stream layer, which
		// wraps them; join connections have no peer certificate.
		m.cfg.Conns.trackTLS(conn, proto)
	}
	if proto == ProtoAPI || proto == ProtoJoin {
		limiters.Store(conn, m.peers)
	}
	s, ok := m.sub(proto)
	if !ok { // cannot happen: configForClient only offers known protocols
		_ = conn.Close()
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s.ch <- conn:
		return
	case <-s.closed:
	case <-m.ctx.Done():
	case <-t.C:
		m.log.Debug("transport: connection not accepted in time", "remote", raw.RemoteAddr().String(), "proto", proto)
	}
	untrack(conn)
	limiters.Delete(conn)
	_ = conn.Close()
}

// configForClient picks the first protocol the client offers that has an
// open listener and returns the config for it, with a snapshot of the
// current credentials.
func (m *Mux) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	creds, err := m.cfg.Creds.load()
	if err != nil {
		return nil, err
	}
	for _, p := range hello.SupportedProtos {
		if s, ok := m.sub(p); ok && s.accepting() {
			return serverConfig(creds, p, m.cfg.Authorize, m.cfg.Now), nil
		}
	}
	return nil, fmt.Errorf("%w: none of the %d protocols the client offered is served", ErrProtocol, len(hello.SupportedProtos))
}

// subListener is the net.Listener for one protocol.
type subListener struct {
	mux       *Mux
	proto     string
	ch        chan *tls.Conn
	open      atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
}

func (s *subListener) accepting() bool {
	if !s.open.Load() {
		return false
	}
	select {
	case <-s.closed:
		return false
	case <-s.mux.ctx.Done():
		return false
	default:
		return true
	}
}

// Accept returns the next handshaken, authorized connection as a *tls.Conn.
func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.ch:
		return c, nil
	case <-s.closed:
		return nil, fmt.Errorf("accept %s: %w", s.proto, net.ErrClosed)
	case <-s.mux.ctx.Done():
		return nil, fmt.Errorf("accept %s: %w", s.proto, net.ErrClosed)
	}
}

// Close stops offering the protocol and unblocks Accept. It does not close
// the Mux.
func (s *subListener) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func (s *subListener) Addr() net.Addr { return s.mux.ln.Addr() }

// badListener is returned for unknown protocols.
type badListener struct {
	addr net.Addr
	err  error
}

func (b *badListener) Accept() (net.Conn, error) { return nil, b.err }
func (b *badListener) Close() error              { return nil }
func (b *badListener) Addr() net.Addr            { return b.addr }
