package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
)

func TestDialJoin(t *testing.T) {
	c, other := newCluster(t), newCluster(t)
	srv := startServer(t, c.node(t, ca.RoleManager), nil)
	accepted := acceptAll(t, srv.mux.Listener(ProtoJoin))
	workerSrv := startServer(t, c.node(t, ca.RoleWorker), nil)
	workerSrv.mux.Listener(ProtoJoin)

	conn, root, err := DialJoin(context.Background(), srv.addr(), c.root.Digest(), 0)
	if err != nil {
		t.Fatalf("DialJoin: %v", err)
	}
	defer conn.Close()
	if !root.Equal(c.root.Certificate()) {
		t.Error("DialJoin returned a different root")
	}
	if cs := conn.ConnectionState(); len(cs.PeerCertificates) != 2 {
		t.Errorf("server presented %d certificates; want leaf and root", len(cs.PeerCertificates))
	}
	roundTrip(t, conn, accepted, "join-1")

	tests := []struct {
		name    string
		addr    string
		digest  string
		wantErr error
	}{
		{"other cluster's digest", srv.addr(), other.root.Digest(), ErrCAMismatch},
		{"digest of the leaf", srv.addr(), ca.DigestOf(srv.creds.Load().Cert.Certificate[0]), ErrCAMismatch},
		{"server is a worker", workerSrv.addr(), c.root.Digest(), ErrCAMismatch},
		{"malformed digest", srv.addr(), strings.ToUpper(c.root.Digest()), ca.ErrMalformedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mark := srv.log.mark()
			conn, _, err := DialJoin(context.Background(), tc.addr, tc.digest, 0)
			if !errors.Is(err, tc.wantErr) {
				if conn != nil {
					conn.Close()
				}
				t.Fatalf("DialJoin error = %v; want %v", err, tc.wantErr)
			}
			if tc.addr == srv.addr() && tc.wantErr == ErrCAMismatch {
				srv.log.waitFrom(t, mark, "bad certificate")
			}
			// The server never hands the refused connection to its listener.
			ok, _, err := DialJoin(context.Background(), srv.addr(), c.root.Digest(), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer ok.Close()
			roundTrip(t, ok, accepted, "after:"+tc.name)
		})
	}
}

func TestJoinClient(t *testing.T) {
	c, other := newCluster(t), newCluster(t)
	srv := startServer(t, c.node(t, ca.RoleManager), nil)
	var requests atomic.Int32
	hs := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if _, ok := PeerIdentity(r.TLS); ok {
			t.Error("join request has a peer identity")
		}
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, "welcome "+string(b))
	}))
	served := make(chan error, 1)
	// Open before any client dials: a protocol without a listener is refused.
	ln := srv.mux.Listener(ProtoJoin)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		hs.Close()
		<-served
	})
	url := "https://" + srv.addr() + "/join"

	_, err := NewJoinClient(other.root.Digest(), 0, nil).Post(url, "text/plain", strings.NewReader("secret-token"))
	if !errors.Is(err, ErrCAMismatch) {
		t.Fatalf("Post with wrong digest: %v; want ErrCAMismatch", err)
	}
	srv.log.waitFor(t, "bad certificate")
	if n := requests.Load(); n != 0 {
		t.Fatalf("server received %d requests from a client with the wrong digest", n)
	}

	// The joiner checks the server's certificate dates at its own clock:
	// one years ahead finds it expired and sends nothing.
	ahead := func() time.Time { return time.Now().AddDate(10, 0, 0) }
	if _, err := NewJoinClient(c.root.Digest(), 0, ahead).Post(url, "text/plain", strings.NewReader("secret-token")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Post with a clock past the server's certificate: %v; want it refused as expired", err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("server received %d requests from a client that refused its certificate", n)
	}

	resp, err := NewJoinClient(c.root.Digest(), 0, nil).Post(url, "text/plain", strings.NewReader("secret-token"))
	if err != nil {
		t.Fatalf("Post: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "welcome secret-token" {
		t.Errorf("body = %q", body)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("server received %d requests; want 1", n)
	}
}
