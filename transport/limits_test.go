package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// limitLog records the limits a Mux reports through OnLimit.
type limitLog struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *limitLog) hit(limit string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[limit]++
}

func (l *limitLog) count(limit string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[limit]
}

// waitCond waits until cond holds, failing the test at waitLimit.
func waitCond(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitLimit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// dialFrom opens a TCP connection to addr from the loopback address local.
func dialFrom(t testing.TB, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closes c (rather than the
// read waiting until waitLimit).
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := io.ReadAll(c)
	return !isTimeout(err)
}

// TestHandshakeCaps: connections that open TCP and send nothing (or half
// a ClientHello) hold at most MaxHandshakes handshakes, and
// MaxHandshakesPerIP from one address; the next is closed at once,
// counted, and other addresses still get in.
func TestHandshakeCaps(t *testing.T) {
	c := newCluster(t)
	mgr, worker := c.node(t, ca.RoleManager), c.node(t, ca.RoleWorker)
	for _, tc := range []struct {
		name      string
		limits    Limits
		limit     string
		otherGets bool // a client from another IP gets in while the cap is full
	}{
		{"global", Limits{MaxHandshakes: 3, MaxHandshakesPerIP: -1}, LimitHandshakes, false},
		{"per IP", Limits{MaxHandshakes: -1, MaxHandshakesPerIP: 3}, LimitHandshakesPerIP, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits limitLog
			srv := startServer(t, mgr, func(cfg *Config) {
				cfg.HandshakeTimeout = time.Hour
				cfg.Limits = tc.limits
				cfg.OnLimit = hits.hit
			})
			srv.mux.Listener(ProtoAPI)
			stalled := make([]net.Conn, 3)
			for i := range stalled {
				stalled[i] = dialFrom(t, "127.0.0.1", srv.addr())
			}
			// Half a ClientHello: a record header and nothing more.
			if _, err := stalled[0].Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
				t.Fatal(err)
			}
			waitCond(t, "three handshakes in progress", func() bool { return srv.mux.handshakes.held() == 3 })
			over := dialFrom(t, "127.0.0.1", srv.addr())
			if !closedByServer(over) {
				t.Fatal("a connection over the cap was not closed")
			}
			if got := hits.count(tc.limit); got != 1 {
				t.Fatalf("OnLimit(%s) called %d times; want 1", tc.limit, got)
			}
			cfg := clientCfg(worker)
			cfg.Conns = nil
			if conn, err := dialOther(cfg, srv.addr()); tc.otherGets != (err == nil) {
				t.Fatalf("a client from 127.0.0.2 while the cap is full: err = %v; want success %v", err, tc.otherGets)
			} else if err == nil {
				conn.Close()
			}
			// A slot freed is a slot taken again.
			stalled[1].Close()
			waitCond(t, "a handshake to end", func() bool { return srv.mux.handshakes.held() == 2 })
			conn, err := dialProto(context.Background(), clientCfg(worker), srv.addr(), ProtoAPI, 0)
			if err != nil {
				t.Fatalf("a client once a handshake ended: %v", err)
			}
			conn.Close()
		})
	}
}

// dialOther dials ProtoAPI from 127.0.0.2.
func dialOther(cfg Config, addr string) (*tls.Conn, error) {
	creds, _ := cfg.Creds.load()
	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}, Config: clientConfig(creds, ProtoAPI, nil, time.Now)}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// TestHandshakeDeadlineFreesSlots: stalled handshakes are closed at the
// deadline, counted, and their slots serve honest clients again.
func TestHandshakeDeadlineFreesSlots(t *testing.T) {
	c := newCluster(t)
	mgr, worker := c.node(t, ca.RoleManager), c.node(t, ca.RoleWorker)
	var hits limitLog
	srv := startServer(t, mgr, func(cfg *Config) {
		cfg.HandshakeTimeout = 100 * time.Millisecond
		cfg.Limits = Limits{MaxHandshakes: 2}
		cfg.OnLimit = hits.hit
	})
	srv.mux.Listener(ProtoAPI)
	for range 2 {
		stalled := dialFrom(t, "127.0.0.1", srv.addr())
		if !closedByServer(stalled) {
			t.Fatal("the handshake deadline did not close a stalled connection")
		}
	}
	waitCond(t, "two handshake timeouts counted", func() bool { return hits.count(LimitHandshakeTimeout) == 2 })
	waitCond(t, "the slots freed", func() bool { return srv.mux.handshakes.held() == 0 })
	conn, err := dialProto(context.Background(), clientCfg(worker), srv.addr(), ProtoAPI, 0)
	if err != nil {
		t.Fatalf("an honest client after the stalled ones: %v", err)
	}
	conn.Close()
	if n := hits.count(LimitHandshakes); n != 0 {
		t.Fatalf("%d refusals by the cap; want none", n)
	}
}

// httpServer serves h with NewHTTPServer on srv's ProtoAPI listener.
func httpServer(t testing.TB, srv *server, h http.Handler) {
	t.Helper()
	hs := NewHTTPServer(h)
	ln := srv.mux.Listener(ProtoAPI)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		hs.Close()
		<-done
	})
}

// apiConn is one node API connection of a node, for sending requests one
// by one.
type apiConn struct {
	c  *tls.Conn
	br *bufio.Reader
}

func openAPI(t testing.TB, creds *Credentials, addr string) *apiConn {
	t.Helper()
	c, err := dialProto(context.Background(), clientCfg(creds), addr, ProtoAPI, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &apiConn{c: c, br: bufio.NewReader(c)}
}

// send writes a GET of path.
func (a *apiConn) send(t testing.TB, path string) {
	t.Helper()
	if _, err := io.WriteString(a.c, "GET "+path+" HTTP/1.1\r\nHost: holdfast\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// status reads a response and returns its status and Retry-After.
func (a *apiConn) status(t testing.TB) (int, string) {
	t.Helper()
	_ = a.c.SetReadDeadline(time.Now().Add(waitLimit))
	resp, err := http.ReadResponse(a.br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func (a *apiConn) get(t testing.TB, path string) (int, string) {
	t.Helper()
	a.send(t, path)
	return a.status(t)
}

// TestConnLimits: a worker over its connections, or any peer over the
// node's, is answered 429 with Retry-After and its connection closed;
// other workers and managers are not held back by one worker's.
func TestConnLimits(t *testing.T) {
	c := newCluster(t)
	mgr := c.node(t, ca.RoleManager)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})

	t.Run("per peer", func(t *testing.T) {
		var hits limitLog
		srv := startServer(t, mgr, func(cfg *Config) {
			cfg.Limits = Limits{MaxConnsPerPeer: 2}
			cfg.OnLimit = hits.hit
		})
		httpServer(t, srv, ok)
		w1, w2, peer := c.node(t, ca.RoleWorker), c.node(t, ca.RoleWorker), c.node(t, ca.RoleManager)
		for range 2 {
			if st, _ := openAPI(t, w1, srv.addr()).get(t, "/"); st != http.StatusOK {
				t.Fatalf("a worker's connection within the limit: %d", st)
			}
		}
		over := openAPI(t, w1, srv.addr())
		if st, ra := over.get(t, "/"); st != http.StatusTooManyRequests || ra == "" {
			t.Fatalf("a worker's third connection: %d, Retry-After %q; want 429 with Retry-After", st, ra)
		}
		if !closedByServer(over.c) {
			t.Fatal("the refused connection stays open")
		}
		if n := hits.count(LimitConnsPerPeer); n != 1 {
			t.Fatalf("OnLimit(%s) %d times; want 1", LimitConnsPerPeer, n)
		}
		if st, _ := openAPI(t, w2, srv.addr()).get(t, "/"); st != http.StatusOK {
			t.Fatalf("another worker: %d", st)
		}
		for range 3 {
			if st, _ := openAPI(t, peer, srv.addr()).get(t, "/"); st != http.StatusOK {
				t.Fatalf("a manager is not limited: %d", st)
			}
		}
	})

	t.Run("global", func(t *testing.T) {
		var hits limitLog
		srv := startServer(t, mgr, func(cfg *Config) {
			cfg.Limits = Limits{MaxConns: 2}
			cfg.OnLimit = hits.hit
		})
		httpServer(t, srv, ok)
		first := openAPI(t, c.node(t, ca.RoleWorker), srv.addr())
		for _, a := range []*apiConn{first, openAPI(t, c.node(t, ca.RoleWorker), srv.addr())} {
			if st, _ := a.get(t, "/"); st != http.StatusOK {
				t.Fatalf("within the limit: %d", st)
			}
		}
		if st, _ := openAPI(t, c.node(t, ca.RoleWorker), srv.addr()).get(t, "/"); st != http.StatusTooManyRequests {
			t.Fatalf("a third worker over MaxConns 2: %d; want 429", st)
		}
		if n := hits.count(LimitConns); n != 1 {
			t.Fatalf("OnLimit(%s) %d times; want 1", LimitConns, n)
		}
		// A connection closed frees its place.
		first.c.Close()
		waitCond(t, "the closed connection to be released", func() bool { return srv.mux.peers.conns.held() == 1 })
		if st, _ := openAPI(t, c.node(t, ca.RoleWorker), srv.addr()).get(t, "/"); st != http.StatusOK {
			t.Fatalf("after a connection closed: %d", st)
		}
	})
}

// TestRequestLimits: requests in progress over a worker's limit, or the
// node's, are answered 429; when one ends, the next is served.
func TestRequestLimits(t *testing.T) {
	c := newCluster(t)
	mgr := c.node(t, ca.RoleManager)
	for _, tc := range []struct {
		name     string
		limits   Limits
		limit    string
		samePeer bool
	}{
		{"per peer", Limits{MaxRequestsPerPeer: 1}, LimitRequestsPerPeer, true},
		{"global", Limits{MaxRequests: 1}, LimitRequests, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits limitLog
			srv := startServer(t, mgr, func(cfg *Config) {
				cfg.Limits = tc.limits
				cfg.OnLimit = hits.hit
			})
			entered, release := make(chan struct{}, 1), make(chan struct{})
			httpServer(t, srv, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/poll" {
					entered <- struct{}{}
					<-release
				}
			}))
			w1 := c.node(t, ca.RoleWorker)
			w2 := w1
			if !tc.samePeer {
				w2 = c.node(t, ca.RoleWorker)
			}
			poll := openAPI(t, w1, srv.addr())
			poll.send(t, "/poll")
			<-entered
			other := openAPI(t, w2, srv.addr())
			if st, ra := other.get(t, "/"); st != http.StatusTooManyRequests || ra == "" {
				t.Fatalf("a request over the limit: %d, Retry-After %q; want 429", st, ra)
			}
			if n := hits.count(tc.limit); n != 1 {
				t.Fatalf("OnLimit(%s) %d times; want 1", tc.limit, n)
			}
			close(release)
			if st, _ := poll.status(t); st != http.StatusOK {
				t.Fatalf("the long poll: %d", st)
			}
			waitCond(t, "the poll to be released", func() bool { return srv.mux.peers.reqs.held() == 0 })
			if st, _ := other.get(t, "/"); st != http.StatusOK {
				t.Fatalf("once the poll ended, on the same connection: %d", st)
			}
		})
	}
}

// TestSlowReaderLosesConnection: a peer that never reads its answer holds
// the handler and the connection for WriteTimeout at most.
func TestSlowReaderLosesConnection(t *testing.T) {
	c := newCluster(t)
	mgr, worker := c.node(t, ca.RoleManager), c.node(t, ca.RoleWorker)
	var hits limitLog
	srv := startServer(t, mgr, func(cfg *Config) {
		cfg.Limits = Limits{WriteTimeout: 200 * time.Millisecond}
		cfg.OnLimit = hits.hit
	})
	writeErr := make(chan error, 1)
	httpServer(t, srv, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			return
		}
		chunk := make([]byte, 64<<10)
		for range 1 << 12 { // 256 MiB: far more than socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}))
	a := openAPI(t, worker, srv.addr())
	a.send(t, "/big") // and never read
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("the whole answer was written to a client that reads nothing")
		}
	case <-time.After(waitLimit):
		t.Fatal("the handler is still writing to a client that does not read")
	}
	waitCond(t, "the connection to be released", func() bool { return srv.mux.peers.conns.held() == 0 })
	if n := hits.count(LimitWriteTimeout); n != 1 {
		t.Fatalf("OnLimit(%s) %d times; want 1", LimitWriteTimeout, n)
	}
	// The next request, on a new connection, is served as usual.
	if st, _ := openAPI(t, worker, srv.addr()).get(t, "/small"); st != http.StatusOK {
		t.Fatalf("a request after the slow reader's: %d", st)
	}
}

// TestWithheldBodyLosesConnection: a peer that sends a request's headers
// and withholds its body loses the connection at BodyTimeout; a body that
// arrives clears the deadline, so the handler may work past it.
func TestWithheldBodyLosesConnection(t *testing.T) {
	c := newCluster(t)
	mgr, worker := c.node(t, ca.RoleManager), c.node(t, ca.RoleWorker)
	var hits limitLog
	const bodyTimeout = 100 * time.Millisecond
	srv := startServer(t, mgr, func(cfg *Config) {
		cfg.Limits = Limits{BodyTimeout: bodyTimeout}
		cfg.OnLimit = hits.hit
	})
	readErr := make(chan error, 1)
	httpServer(t, srv, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if r.URL.Path == "/withheld" {
			readErr <- err
			return
		}
		// Work for longer than the body's deadline, as a join's raft
		// write may.
		<-time.After(3 * bodyTimeout)
		if err != nil || r.Context().Err() != nil {
			http.Error(w, "cut", http.StatusInternalServerError)
		}
	}))
	a := openAPI(t, worker, srv.addr())
	if _, err := io.WriteString(a.c, "POST /withheld HTTP/1.1\r\nHost: holdfast\r\nContent-Length: 100\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if !isTimeout(err) {
			t.Fatalf("reading the withheld body: %v; want a timeout", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the handler still waits for a body that does not come")
	}
	if !closedByServer(a.c) {
		t.Fatal("the connection of a withheld body stays open")
	}
	if n := hits.count(LimitBodyTimeout); n != 1 {
		t.Fatalf("OnLimit(%s) %d times; want 1", LimitBodyTimeout, n)
	}
	b := openAPI(t, worker, srv.addr())
	if _, err := io.WriteString(b.c, "POST /work HTTP/1.1\r\nHost: holdfast\r\nContent-Length: 3\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.status(t); st != http.StatusOK {
		t.Fatalf("a request whose handler works past the body's deadline: %d", st)
	}
	if st, _ := b.get(t, "/work"); st != http.StatusOK {
		t.Fatalf("the next request on that connection: %d", st)
	}
}
