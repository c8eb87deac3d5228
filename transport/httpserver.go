package transport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// NewHTTPServer returns an http.Server for h that serves HTTP/1.1 on a Mux's
// ProtoAPI and ProtoJoin listeners: srv.Serve(mux.Listener(ProtoAPI)).
// Requests have r.TLS set, so PeerIdentity(r.TLS) names the caller on
// ProtoAPI. A plain http.Server would close these connections, because it
// treats any negotiated ALPN protocol it has no TLSNextProto entry for as
// unservable. The caller may change the timeouts before serving; they apply
// to every connection. Shutdown and Close work as usual.
func NewHTTPServer(h http.Handler) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		inners   = map[*http.Server]struct{}{}
		shutdown bool
	)
	serve := func(outer *http.Server, c *tls.Conn, h http.Handler) {
		lim, limited := limiters.LoadAndDelete(c)
		// h sets r.TLS from c before calling outer's handler.
		inner := &http.Server{
			Handler:           h,
			ReadTimeout:       outer.ReadTimeout,
			ReadHeaderTimeout: outer.ReadHeaderTimeout,
			WriteTimeout:      outer.WriteTimeout,
			IdleTimeout:       outer.IdleTimeout,
			MaxHeaderBytes:    outer.MaxHeaderBytes,
			ErrorLog:          outer.ErrorLog,
		}
		mu.Lock()
		if shutdown {
			mu.Unlock()
			return
		}
		inners[inner] = struct{}{}
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(inners, inner)
			mu.Unlock()
		}()
		l := newConnListener(c)
		if limited {
			p := lim.(*peerLimiter)
			var done func()
			inner.Handler, done = p.serveConn(c, inner, h)
			defer done()
			l.conn.(*hiddenConn).onTimeout = func() { p.onLimit(LimitWriteTimeout) }
		}
		_ = inner.Serve(l)
		// outer closes c when this returns: wait until inner is done with it.
		<-l.connDone
		untrack(c)
	}
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		ProtoAPI:  serve,
		ProtoJoin: serve,
	}
	srv.RegisterOnShutdown(func() {
		mu.Lock()
		defer mu.Unlock()
		shutdown = true
		for in := range inners {
			go in.Shutdown(context.Background())
		}
	})
	return srv
}

// connListener hands out one connection, then blocks until the connection
// or the listener is closed.
type connListener struct {
	mu       sync.Mutex
	conn     net.Conn // nil once handed out
	addr     net.Addr
	connDone chan struct{}
	connOnce sync.Once
	done     chan struct{}
	doneOnce sync.Once
}

func newConnListener(c *tls.Conn) *connListener {
	l := &connListener{addr: c.LocalAddr(), connDone: make(chan struct{}), done: make(chan struct{})}
	l.conn = &hiddenConn{Conn: c, l: l}
	return l
}

func (l *connListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	select {
	case <-l.connDone:
	case <-l.done:
	}
	return nil, net.ErrClosed
}

func (l *connListener) Close() error {
	l.doneOnce.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// hiddenConn is a *tls.Conn that http.Server does not recognize as one, so
// it serves HTTP/1.1 whatever protocol was negotiated.
type hiddenConn struct {
	*tls.Conn
	l *connListener
	// onTimeout, if set, is called once when a write misses its
	// deadline (Limits.WriteTimeout).
	onTimeout func()
	timedOut  atomic.Bool
}

func (c *hiddenConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && c.onTimeout != nil && isTimeout(err) && c.timedOut.CompareAndSwap(false, true) {
		c.onTimeout()
	}
	return n, err
}

func (c *hiddenConn) Close() error {
	err := c.Conn.Close()
	c.l.connOnce.Do(func() { close(c.l.connDone) })
	return err
}
