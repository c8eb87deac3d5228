package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
)

func TestRaftBetweenManagers(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	srv := startServer(t, n1, nil)
	accepted := acceptAll(t, srv.mux.Listener(ProtoRaft))

	conn, err := dialProto(context.Background(), clientCfg(n2), srv.addr(), ProtoRaft, 0)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	if got, _ := PeerIdentity(&cs); got != n1.ID {
		t.Errorf("client sees %+v; want %+v", got, n1.ID)
	}
	if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != ProtoRaft {
		t.Errorf("version %x proto %q", cs.Version, cs.NegotiatedProtocol)
	}
	sc := roundTrip(t, conn, accepted, "ping")
	scs := sc.ConnectionState()
	if got, ok := PeerIdentity(&scs); !ok || got != n2.ID {
		t.Errorf("server sees %+v, %v; want %+v", got, ok, n2.ID)
	}
}

// TestServerRefuses dials with clients the server must refuse and checks
// the refusal is logged with its reason and that the listener never sees the
// connection: the next connection it accepts is a good one.
func TestServerRefuses(t *testing.T) {
	c, other := newCluster(t), newCluster(t)
	n1 := c.node(t, ca.RoleManager)
	good := c.node(t, ca.RoleManager)
	worker := c.node(t, ca.RoleWorker).Cert
	otherMgr := other.node(t, ca.RoleManager).Cert
	// Same cluster ID, different root: an impostor CA.
	impostor := &cluster{id: c.id}
	impostor.root, _ = ca.NewRoot(c.id, time.Now())
	impostorMgr := impostor.node(t, ca.RoleManager).Cert
	// Signed by the right root, but for another cluster ID.
	wrongO := c.forged(t, pkix.Name{CommonName: ca.NewID(), OrganizationalUnit: []string{ca.OUManager}, Organization: []string{ca.NewID()}})
	badOU := c.forged(t, pkix.Name{CommonName: ca.NewID(), OrganizationalUnit: []string{"holdfast-admin"}, Organization: []string{c.id}})
	denied := c.node(t, ca.RoleManager)

	srv := startServer(t, n1, func(cfg *Config) {
		cfg.Authorize = func(_ string, id ca.Identity, _ *x509.Certificate) error {
			if id.NodeID == denied.ID.NodeID {
				return errors.New("node was removed")
			}
			return nil
		}
	})
	raft := acceptAll(t, srv.mux.Listener(ProtoRaft))
	api := acceptAll(t, srv.mux.Listener(ProtoAPI))

	tests := []struct {
		name    string
		protos  []string
		cert    *tls.Certificate
		wantLog string
		version uint16
	}{
		{"worker on raft", []string{ProtoRaft}, &worker, "a manager is required", 0},
		{"no cert on raft", []string{ProtoRaft}, nil, "client didn't provide a certificate", 0},
		{"no cert on api", []string{ProtoAPI}, nil, "client didn't provide a certificate", 0},
		{"other cluster on raft", []string{ProtoRaft}, &otherMgr, "certificate not trusted", 0},
		{"other cluster on api", []string{ProtoAPI}, &otherMgr, "certificate not trusted", 0},
		{"impostor root on raft", []string{ProtoRaft}, &impostorMgr, "certificate not trusted", 0},
		{"wrong O on api", []string{ProtoAPI}, &wrongO, "belongs to cluster", 0},
		{"bad OU on api", []string{ProtoAPI}, &badOU, "bad node identity", 0},
		{"denied on raft", []string{ProtoRaft}, &denied.Cert, "node was removed", 0},
		{"denied on api", []string{ProtoAPI}, &denied.Cert, "node was removed", 0},
		{"unknown ALPN", []string{"h2", "http/1.1"}, &good.Cert, "none of the 2 protocols", 0},
		{"no ALPN", nil, &good.Cert, "none of the 0 protocols", 0},
		{"join not served", []string{ProtoJoin}, nil, "none of the 1 protocols", 0},
		{"TLS 1.2", []string{ProtoRaft}, &good.Cert, "unsupported versions", tls.VersionTLS12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mark := srv.log.mark()
			version := tc.version
			if version == 0 {
				version = tls.VersionTLS13
			}
			conn, err := rawDialVersion(srv.addr(), tc.protos, tc.cert, version)
			refusedByServer(t, conn, err)
			srv.log.waitFrom(t, mark, tc.wantLog)

			// The listener must not have seen it: the next conn is the good one.
			proto := ProtoRaft
			accepted := raft
			if len(tc.protos) == 1 && tc.protos[0] == ProtoAPI {
				proto, accepted = ProtoAPI, api
			}
			ok, err := dialProto(context.Background(), clientCfg(good), srv.addr(), proto, 0)
			if err != nil {
				t.Fatalf("good dial: %v", err)
			}
			defer ok.Close()
			roundTrip(t, ok, accepted, "good:"+tc.name)
		})
	}
}

func TestClientRefuses(t *testing.T) {
	c, other := newCluster(t), newCluster(t)
	mgr := c.node(t, ca.RoleManager)
	tests := []struct {
		name      string
		server    *Credentials
		authorize AuthorizeFunc
	}{
		{"server is a worker", c.node(t, ca.RoleWorker), nil},
		{"server of another cluster", other.node(t, ca.RoleManager), nil},
		{"server denied by Authorize", c.node(t, ca.RoleManager), func(string, ca.Identity, *x509.Certificate) error { return errors.New("removed") }},
	}
	for _, tc := range tests {
		for _, proto := range []string{ProtoRaft, ProtoAPI} {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				srv := startServer(t, tc.server, nil)
				accepted := acceptAll(t, srv.mux.Listener(proto))
				cfg := clientCfg(mgr)
				cfg.Authorize = tc.authorize
				_, err := dialProto(context.Background(), cfg, srv.addr(), proto, 0)
				if !errors.Is(err, ErrPeerRefused) {
					t.Fatalf("dial error = %v; want ErrPeerRefused", err)
				}
				srv.log.waitFor(t, "connection refused")
				select {
				case c := <-accepted:
					t.Fatalf("server accepted a connection the client refused: %v", c.RemoteAddr())
				default:
				}
			})
		}
	}
}

func TestAPI(t *testing.T) {
	c := newCluster(t)
	mgr := c.node(t, ca.RoleManager)
	srv := startServer(t, mgr, nil)
	hs := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := PeerIdentity(r.TLS)
		if !ok {
			http.Error(w, "no identity", http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(id)
	}))
	served := make(chan error, 1)
	// Open before any client dials: a protocol without a listener is refused.
	ln := srv.mux.Listener(ProtoAPI)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown with idle API connections: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})

	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleManager} {
		t.Run(string(role), func(t *testing.T) {
			n := c.node(t, role)
			client := NewAPIClient(clientCfg(n))
			for i := range 2 { // the second request reuses the pooled connection
				var reused bool
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
				})
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+srv.addr()+"/whoami", nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				var got ca.Identity
				err = json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if err != nil || got != n.ID {
					t.Fatalf("server saw %+v (%v); want %+v", got, err, n.ID)
				}
				if reused != (i == 1) {
					t.Errorf("request %d: connection reused = %v", i, reused)
				}
			}
		})
	}
	t.Run("plain http refused", func(t *testing.T) {
		client := NewAPIClient(clientCfg(mgr))
		if _, err := client.Get("http://" + srv.addr() + "/"); !errors.Is(err, errPlainHTTP) {
			t.Fatalf("error = %v; want errPlainHTTP", err)
		}
	})
}

func TestStalledClientDoesNotBlock(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)

	t.Run("others proceed", func(t *testing.T) {
		srv := startServer(t, n1, func(cfg *Config) { cfg.HandshakeTimeout = time.Hour })
		accepted := acceptAll(t, srv.mux.Listener(ProtoRaft))
		stalled, err := net.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Close()
		if _, err := stalled.Write([]byte{0x16, 0x03, 0x01}); err != nil { // a partial record header
			t.Fatal(err)
		}
		conn, err := dialProto(context.Background(), clientCfg(n2), srv.addr(), ProtoRaft, 0)
		if err != nil {
			t.Fatalf("dial while another client stalls: %v", err)
		}
		defer conn.Close()
		roundTrip(t, conn, accepted, "ping")
		// Close must abort the stalled handshake rather than wait an hour.
		if err := srv.mux.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stalled client is dropped", func(t *testing.T) {
		srv := startServer(t, n1, func(cfg *Config) { cfg.HandshakeTimeout = 50 * time.Millisecond })
		srv.mux.Listener(ProtoRaft)
		stalled, err := net.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Close()
		_ = stalled.SetReadDeadline(time.Now().Add(waitLimit))
		_, err = io.ReadAll(stalled)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("server did not close the stalled connection")
		}
		srv.log.waitFor(t, "connection refused")
	})
}

func TestCredStoreSwap(t *testing.T) {
	c, next := newCluster(t), newCluster(t)
	n1, client := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	srv := startServer(t, n1, nil)
	accepted := acceptAll(t, srv.mux.Listener(ProtoRaft))

	dialSees := func() (ca.Identity, error) {
		conn, err := dialProto(context.Background(), clientCfg(client), srv.addr(), ProtoRaft, 0)
		if err != nil {
			return ca.Identity{}, err
		}
		defer conn.Close()
		roundTrip(t, conn, accepted, "x")
		cs := conn.ConnectionState()
		id, _ := PeerIdentity(&cs)
		return id, nil
	}
	if got, err := dialSees(); err != nil || got != n1.ID {
		t.Fatalf("before swap: %+v, %v; want %+v", got, err, n1.ID)
	}
	old, err := dialProto(context.Background(), clientCfg(client), srv.addr(), ProtoRaft, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldServer := roundTrip(t, old, accepted, "old")

	renewed := c.node(t, ca.RoleManager)
	srv.creds.Store(renewed)
	if got, err := dialSees(); err != nil || got != renewed.ID {
		t.Fatalf("after swap: %+v, %v; want %+v", got, err, renewed.ID)
	}
	// The existing connection keeps working.
	if _, err := oldServer.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "still" {
		t.Fatalf("old connection: %q, %v", buf, err)
	}

	// Moving the server to another CA refuses clients of the old one.
	srv.creds.Store(next.node(t, ca.RoleManager))
	if _, err := dialSees(); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("after moving to another CA: %v; want ErrPeerRefused", err)
	}
	srv.creds.Store(nil)
	conn, err := rawDial(srv.addr(), []string{ProtoRaft}, &client.Cert)
	refusedByServer(t, conn, err)
	srv.log.waitFor(t, ErrNoCredentials.Error())
}

func TestListeners(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	srv := startServer(t, n1, nil)
	raftL := srv.mux.Listener(ProtoRaft)
	if srv.mux.Listener(ProtoRaft) != raftL {
		t.Error("Listener returned a different listener for the same protocol")
	}
	api := acceptAll(t, srv.mux.Listener(ProtoAPI))
	if err := raftL.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := raftL.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after sub-listener Close = %v; want net.ErrClosed", err)
	}
	conn, err := rawDial(srv.addr(), []string{ProtoRaft}, &n2.Cert)
	refusedByServer(t, conn, err)
	// The Mux still serves the other protocols.
	ok, err := dialProto(context.Background(), clientCfg(n2), srv.addr(), ProtoAPI, 0)
	if err != nil {
		t.Fatalf("api after raft listener closed: %v", err)
	}
	defer ok.Close()
	roundTrip(t, ok, api, "api")

	if _, err := srv.mux.Listener("bogus/1").Accept(); !errors.Is(err, ErrProtocol) {
		t.Errorf("Accept on unknown protocol = %v; want ErrProtocol", err)
	}
	join := srv.mux.Listener(ProtoJoin)
	if err := srv.mux.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := join.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Mux.Close = %v; want net.ErrClosed", err)
	}
	if _, err := net.Dial("tcp", srv.addr()); err == nil {
		t.Error("Mux still listening after Close")
	}
}

func TestLoadCredentials(t *testing.T) {
	c, other := newCluster(t), newCluster(t)
	key, _ := ca.NewKey()
	keyPEM, _ := ca.MarshalKey(key)
	csr, _ := ca.NewCSR(key)
	id := ca.Identity{NodeID: ca.NewID(), Role: ca.RoleManager, ClusterID: c.id}
	certPEM, err := c.root.Issue(csr, id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := ca.NewKey()
	otherKeyPEM, _ := ca.MarshalKey(otherKey)
	bundle := append(other.root.CertPEM(), c.root.CertPEM()...)

	creds, err := LoadCredentials(certPEM, keyPEM, bundle)
	if err != nil {
		t.Fatalf("LoadCredentials: %v", err)
	}
	if creds.ID != id || len(creds.Cert.Certificate) != 2 || ca.DigestOf(creds.Cert.Certificate[1]) != c.root.Digest() {
		t.Errorf("creds: id %+v, chain of %d", creds.ID, len(creds.Cert.Certificate))
	}
	tests := []struct {
		name             string
		cert, key, roots []byte
		wantErr          error
	}{
		{"key mismatch", certPEM, otherKeyPEM, c.root.CertPEM(), ca.ErrKeyMismatch},
		{"wrong root", certPEM, keyPEM, other.root.CertPEM(), ca.ErrUntrusted},
		{"no roots", certPEM, keyPEM, nil, ca.ErrBadCert},
		{"bad key", certPEM, []byte("x"), c.root.CertPEM(), ca.ErrBadKey},
		{"root as leaf", c.root.CertPEM(), c.root.KeyPEM(), c.root.CertPEM(), ca.ErrUntrusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadCredentials(tc.cert, tc.key, tc.roots); !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v; want %v", err, tc.wantErr)
			}
		})
	}
}

func TestPeerIdentityWithoutCert(t *testing.T) {
	for i, cs := range []*tls.ConnectionState{nil, {}, {HandshakeComplete: true}} {
		if _, ok := PeerIdentity(cs); ok {
			t.Errorf("case %d: PeerIdentity ok; want false", i)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := Listen("127.0.0.1:0", Config{}); err == nil {
		t.Error("Listen without Creds succeeded")
	}
	cfg := DefaultConfig(NewCredStore(nil))
	cfg.HandshakeTimeout = -1
	if err := cfg.Validate(); err == nil {
		t.Error("negative timeout accepted")
	}
	_, err := dialProto(context.Background(), DefaultConfig(NewCredStore(nil)), "127.0.0.1:1", ProtoAPI, 0)
	if !errors.Is(err, ErrNoCredentials) {
		t.Errorf("dial without credentials = %v; want ErrNoCredentials", err)
	}
}

// A node that stops raft on demotion opens the raft listener again on
// promotion: a closed sub-listener is replaced by a fresh one.
func TestListenerReopensAfterClose(t *testing.T) {
	c := newCluster(t)
	m := startServer(t, c.node(t, "manager"), nil).mux
	ln := m.Listener(ProtoRaft)
	ln.Close()
	if _, err := ln.Accept(); err == nil {
		t.Fatal("Accept on a closed listener succeeded")
	}
	ln2 := m.Listener(ProtoRaft)
	if ln2 == ln {
		t.Fatal("Listener returned the closed listener again")
	}
	if ln3 := m.Listener(ProtoRaft); ln3 != ln2 {
		t.Error("Listener did not return the open listener")
	}
}
