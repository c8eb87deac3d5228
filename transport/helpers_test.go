package transport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// waitLimit bounds every wait on a condition; reaching it is a test failure.
const waitLimit = 20 * time.Second

type cluster struct {
	id   string
	root *ca.Root
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	id := ca.NewID()
	r, err := ca.NewRoot(id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{id: id, root: r}
}

// node issues credentials for a new node with role.
func (c *cluster) node(t testing.TB, role ca.Role) *Credentials {
	t.Helper()
	key, err := ca.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := c.root.Issue(csr, ca.Identity{NodeID: ca.NewID(), Role: role, ClusterID: c.id}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := LoadCredentials(certPEM, keyPEM, c.root.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// forged returns a client certificate signed by c's root with an arbitrary
// subject, bypassing Issue's rules.
func (c *cluster) forged(t testing.TB, subject pkix.Name) tls.Certificate {
	t.Helper()
	rootKey, err := ca.ParseKey(c.root.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ca.NewKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root.Certificate(), &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// logRec is a slog.Handler that records lines for tests to wait on.
type logRec struct {
	mu     sync.Mutex
	lines  []string
	notify chan struct{}
}

func newLogRec() *logRec { return &logRec{notify: make(chan struct{}, 1)} }

func (h *logRec) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRec) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRec) WithGroup(string) slog.Handler            { return h }
func (h *logRec) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, b.String())
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
	return nil
}

// mark returns a position for waitFrom: only lines logged after it count.
func (h *logRec) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.lines)
}

func (h *logRec) contains(from int, substr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lines[from:] {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// waitFor waits until a logged line contains substr.
func (h *logRec) waitFor(t testing.TB, substr string) {
	t.Helper()
	h.waitFrom(t, 0, substr)
}

// waitFrom waits until a line logged after mark contains substr.
func (h *logRec) waitFrom(t testing.TB, mark int, substr string) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for !h.contains(mark, substr) {
		select {
		case <-h.notify:
		case <-deadline.C:
			h.mu.Lock()
			defer h.mu.Unlock()
			t.Fatalf("no log line contains %q; lines:\n%s", substr, strings.Join(h.lines, "\n"))
		}
	}
}

type server struct {
	mux   *Mux
	creds *CredStore
	log   *logRec
	cfg   Config
}

// startServer starts a Mux for creds with the given protocols' listeners open.
func startServer(t testing.TB, creds *Credentials, mod func(*Config)) *server {
	t.Helper()
	rec := newLogRec()
	cfg := DefaultConfig(NewCredStore(creds))
	cfg.Logger = slog.New(rec)
	if mod != nil {
		mod(&cfg)
	}
	m, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Mux.Close: %v", err)
		}
	})
	return &server{mux: m, creds: cfg.Creds, log: rec, cfg: cfg}
}

func (s *server) addr() string { return s.mux.Addr().String() }

// acceptAll accepts on l until it fails, sending each conn on the channel.
func acceptAll(t testing.TB, l net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(ch)
		for c := range ch {
			c.Close()
		}
	})
	return ch
}

func recvConn(t testing.TB, ch <-chan net.Conn) *tls.Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c.(*tls.Conn)
	case <-time.After(waitLimit):
		t.Fatal("no connection accepted")
		return nil
	}
}

func clientCfg(creds *Credentials) Config {
	return Config{Creds: NewCredStore(creds)}
}

// rawDial is a TLS client that checks nothing, for testing the server side.
func rawDial(addr string, protos []string, cert *tls.Certificate) (*tls.Conn, error) {
	return rawDialVersion(addr, protos, cert, tls.VersionTLS13)
}

func rawDialVersion(addr string, protos []string, cert *tls.Certificate, version uint16) (*tls.Conn, error) {
	cfg := &tls.Config{MinVersion: version, MaxVersion: version, NextProtos: protos, InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// refusedByServer reports whether the server ended the connection: the dial
// failed, or the first read fails with something other than our deadline.
// In TLS 1.3 the client's handshake completes before the server has checked
// the client certificate, so a refusal often shows only on the first read.
func refusedByServer(t testing.TB, c *tls.Conn, err error) error {
	t.Helper()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("connection not refused by the server (read: %v)", err)
	}
	return err
}

// roundTrip writes msg on c and checks the accepted side reads it.
func roundTrip(t testing.TB, c net.Conn, accepted <-chan net.Conn, msg string) *tls.Conn {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	sc := recvConn(t, accepted)
	buf := make([]byte, len(msg))
	_ = sc.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(sc, buf); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("server read %q; want %q (a refused connection reached the listener?)", buf, msg)
	}
	return sc
}
