package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Limits bound what peers can hold of a node through its Mux: handshakes
// in progress, open connections and requests in flight (each in all, and
// per peer), and how long one response may take to write. A peer is a
// node identity on ProtoAPI and a source IP on ProtoJoin and during the
// handshake; managers' connections (raft, and the node API from a
// manager's certificate) are counted in nothing but the handshake caps: a
// manager holds the CA, and refusing its forwarded requests would fail
// operators' writes. Zero fields take the defaults; a negative count means
// no limit.
//
// The defaults let 10,000 workers, each holding one long poll and a few
// short requests, all sit on one manager (the other two down), and still
// bound a node to about DefaultMaxConns+DefaultMaxHandshakes descriptors.
type Limits struct {
	// MaxHandshakes bounds TLS handshakes in progress on the Mux;
	// MaxHandshakesPerIP those from one source IP. A connection over
	// either is closed at once, before any TLS (LimitHandshakes,
	// LimitHandshakesPerIP). Config.HandshakeTimeout bounds each one.
	MaxHandshakes      int
	MaxHandshakesPerIP int
	// MaxConns bounds the open node API and join connections of non-
	// manager peers; MaxConnsPerPeer those of one peer. A connection over
	// either is answered 429 to its first request and closed.
	MaxConns        int
	MaxConnsPerPeer int
	// MaxRequests bounds the HTTP requests of non-manager peers in
	// progress (a worker's long poll is one, for as long as it waits);
	// MaxRequestsPerPeer those of one peer. A request over either is
	// answered 429.
	MaxRequests        int
	MaxRequestsPerPeer int
	// WriteTimeout bounds the writing of one HTTP response, from the
	// moment the handler starts it: a peer that does not read loses its
	// connection then (LimitWriteTimeout).
	WriteTimeout time.Duration
	// BodyTimeout bounds the reading of a request's body, from the
	// moment its handler starts: a peer that sends headers and then
	// trickles (or withholds) the body loses its connection then
	// (LimitBodyTimeout).
	BodyTimeout time.Duration
}

// The default limits.
const (
	DefaultMaxHandshakes      = 1024
	DefaultMaxHandshakesPerIP = 256
	DefaultMaxConns           = 20000
	DefaultMaxConnsPerPeer    = 64
	DefaultMaxRequests        = 20000
	DefaultMaxRequestsPerPeer = 64
	DefaultWriteTimeout       = 10 * time.Second
	DefaultBodyTimeout        = 10 * time.Second
)

// The limits, as Config.OnLimit names them (and the metric's label).
const (
	LimitHandshakes       = "handshakes"
	LimitHandshakesPerIP  = "handshakes_per_ip"
	LimitHandshakeTimeout = "handshake_timeout"
	LimitConns            = "connections"
	LimitConnsPerPeer     = "connections_per_peer"
	LimitRequests         = "requests"
	LimitRequestsPerPeer  = "requests_per_peer"
	LimitWriteTimeout     = "write_timeout"
	LimitBodyTimeout      = "body_timeout"
)

// LimitNames lists every limit name Config.OnLimit may be called with.
var LimitNames = []string{LimitHandshakes, LimitHandshakesPerIP, LimitHandshakeTimeout, LimitConns, LimitConnsPerPeer, LimitRequests, LimitRequestsPerPeer, LimitWriteTimeout, LimitBodyTimeout}

// RefuseFunc answers a request refused by a limit (LimitConns …,
// message for people) with status 429 and a Retry-After header.
type RefuseFunc func(w http.ResponseWriter, r *http.Request, limit, message string)

// withDefaults fills in zero fields.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxHandshakes, DefaultMaxHandshakes)
	def(&l.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP)
	def(&l.MaxConns, DefaultMaxConns)
	def(&l.MaxConnsPerPeer, DefaultMaxConnsPerPeer)
	def(&l.MaxRequests, DefaultMaxRequests)
	def(&l.MaxRequestsPerPeer, DefaultMaxRequestsPerPeer)
	if l.WriteTimeout == 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	if l.BodyTimeout == 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	return l
}

// Descriptors returns how many file descriptors a node with limits l
// may hold for peers at most: every connection and every handshake.
func (l Limits) Descriptors() int {
	l = l.withDefaults()
	n := 0
	for _, v := range []int{l.MaxConns, l.MaxHandshakes} {
		if v > 0 {
			n += v
		}
	}
	return n
}

// counter counts holders in all and per key, each bounded (≤ 0: none).
type counter struct {
	mu       sync.Mutex
	total    int
	per      map[string]int
	max      int
	maxPer   int
	limit    string // what exceeding max is called
	limitPer string // what exceeding maxPer is called
}

func newCounter(max, maxPer int, limit, limitPer string) *counter {
	return &counter{per: map[string]int{}, max: max, maxPer: maxPer, limit: limit, limitPer: limitPer}
}

// acquire takes one for key, or returns the limit it would exceed.
func (c *counter) acquire(key string) (exceeded string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.total >= c.max {
		return c.limit
	}
	if c.maxPer > 0 && c.per[key] >= c.maxPer {
		return c.limitPer
	}
	c.total++
	c.per[key]++
	return ""
}

// release gives back one acquired for key.
func (c *counter) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.per[key]--; c.per[key] <= 0 {
		delete(c.per, key)
	}
}

// held returns how many are held in all.
func (c *counter) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// hostOf returns the IP of a remote address (the address itself if it
// has no port).
func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// peerLimiter enforces a Mux's connection and request limits on the HTTP
// servers from NewHTTPServer that serve its connections.
type peerLimiter struct {
	limits  Limits
	conns   *counter
	reqs    *counter
	onLimit func(string)
	refuse  RefuseFunc
	// refusedFor bounds the life of a connection refused by a limit.
	refusedFor time.Duration
}

func newPeerLimiter(cfg Config) *peerLimiter {
	l := cfg.Limits.withDefaults()
	p := &peerLimiter{
		limits:     l,
		conns:      newCounter(l.MaxConns, l.MaxConnsPerPeer, LimitConns, LimitConnsPerPeer),
		reqs:       newCounter(l.MaxRequests, l.MaxRequestsPerPeer, LimitRequests, LimitRequestsPerPeer),
		onLimit:    cfg.onLimit,
		refuse:     cfg.Refuse,
		refusedFor: cfg.HandshakeTimeout,
	}
	if p.refuse == nil {
		p.refuse = plainRefuse
	}
	return p
}

// plainRefuse is the answer when Config.Refuse is not set.
func plainRefuse(w http.ResponseWriter, r *http.Request, limit, message string) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, message, http.StatusTooManyRequests)
}

// limiters maps a connection the Mux handed to a listener to its Mux's
// peerLimiter, for the HTTP server that serves it.
var limiters sync.Map // *tls.Conn → *peerLimiter

// peerKey names c's peer for the limits; exempt peers are managers.
func peerKey(c *tls.Conn) (key string, exempt bool) {
	cs := c.ConnectionState()
	if cs.NegotiatedProtocol == ProtoAPI {
		if id, ok := PeerIdentity(&cs); ok {
			return "node " + id.NodeID, id.IsManager()
		}
	}
	return "ip " + hostOf(c.RemoteAddr()), false
}

// serveConn prepares c for serving by inner with handler h under the
// limits: it returns the handler to serve c with and a function to call
// when c is done. A connection over a limit is served a handler that
// refuses its request, without keep-alive, within a bounded time.
func (p *peerLimiter) serveConn(c *tls.Conn, inner *http.Server, h http.Handler) (http.Handler, func()) {
	key, exempt := peerKey(c)
	if exempt {
		return p.deadlines(h), func() {}
	}
	if limit := p.conns.acquire(key); limit != "" {
		p.onLimit(limit)
		inner.SetKeepAlivesEnabled(false)
		_ = c.SetDeadline(time.Now().Add(p.refusedFor))
		msg := p.message(limit)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			p.refuse(w, r, limit, msg)
		}), func() {}
	}
	return p.deadlines(p.requests(key, h)), func() { p.conns.release(key) }
}

// requests bounds the requests in progress of key's peer and in all.
func (p *peerLimiter) requests(key string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit := p.reqs.acquire(key); limit != "" {
			p.onLimit(limit)
			p.refuse(w, r, limit, p.message(limit))
			return
		}
		defer p.reqs.release(key)
		h.ServeHTTP(w, r)
	})
}

// message says which limit refused a request.
func (p *peerLimiter) message(limit string) string {
	l := p.limits
	switch limit {
	case LimitConns:
		return "this manager has " + strconv.Itoa(l.MaxConns) + " connections open, its limit: retry later, or through another manager"
	case LimitConnsPerPeer:
		return "this peer has " + strconv.Itoa(l.MaxConnsPerPeer) + " connections open to this manager, its limit: reuse them, or retry later"
	case LimitRequests:
		return "this manager has " + strconv.Itoa(l.MaxRequests) + " requests in progress, its limit: retry later, or through another manager"
	case LimitRequestsPerPeer:
		return "this peer has " + strconv.Itoa(l.MaxRequestsPerPeer) + " requests in progress on this manager, its limit: retry later"
	}
	return fmt.Sprintf("refused by limit %s", limit)
}

// deadlines gives each response WriteTimeout to be written from the
// moment it starts, and clears a deadline left by the previous one; and
// gives a request's body BodyTimeout to arrive.
func (p *peerLimiter) deadlines(h http.Handler) http.Handler {
	d, bd := p.limits.WriteTimeout, p.limits.BodyTimeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if bd > 0 && r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(time.Now().Add(bd))
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, onTimeout: func() { p.onLimit(LimitBodyTimeout) }}
		}
		if d <= 0 {
			h.ServeHTTP(w, r)
			return
		}
		_ = rc.SetWriteDeadline(time.Time{})
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, d: d}, r)
	})
}

// deadlineBody clears the read deadline once the body is read (or fails),
// so that it does not cut the connection while the handler works.
type deadlineBody struct {
	io.ReadCloser
	rc        *http.ResponseController
	onTimeout func()
	done      bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if isTimeout(err) {
			b.onTimeout()
		} else {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}

// deadlineWriter sets the write deadline when the response starts.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	d       time.Duration
	started bool
}

func (w *deadlineWriter) start() {
	if !w.started {
		w.started = true
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	}
}

func (w *deadlineWriter) WriteHeader(code int) {
	w.start()
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses working.
func (w *deadlineWriter) Flush() {
	w.start()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
