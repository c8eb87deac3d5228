package transport

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/ca"
)

// rpcServer answers every raft RPC a transport receives and records what
// it saw.
type rpcServer struct {
	mu   sync.Mutex
	seen []string
	snap []byte
}

func serveRPCs(t *testing.T, tr *raft.NetworkTransport) *rpcServer {
	s := &rpcServer{}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-done:
				return
			case rpc := <-tr.Consumer():
				var resp any
				desc := fmt.Sprintf("%T", rpc.Command)
				switch cmd := rpc.Command.(type) {
				case *raft.AppendEntriesRequest:
					resp = &raft.AppendEntriesResponse{Term: cmd.Term, Success: true}
					desc = fmt.Sprintf("append term %d", cmd.Term)
				case *raft.RequestVoteRequest:
					resp = &raft.RequestVoteResponse{Term: cmd.Term, Granted: true}
					desc = fmt.Sprintf("vote term %d", cmd.Term)
				case *raft.RequestPreVoteRequest:
					resp = &raft.RequestPreVoteResponse{Term: cmd.Term, Granted: true}
				case *raft.TimeoutNowRequest:
					_ = cmd
					resp = &raft.TimeoutNowResponse{}
				case *raft.InstallSnapshotRequest:
					data, _ := io.ReadAll(rpc.Reader)
					s.mu.Lock()
					s.snap = data
					s.mu.Unlock()
					resp = &raft.InstallSnapshotResponse{Term: cmd.Term, Success: true}
				}
				s.mu.Lock()
				s.seen = append(s.seen, desc)
				s.mu.Unlock()
				rpc.Respond(resp, nil)
			}
		}
	}()
	return s
}

func (s *rpcServer) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func header(id string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("127.0.0.1:1")}
}

// TestRaftGuardChecksEveryRPC: a request whose header names another server
// than the certificate is never handed to raft, nor is one from a peer
// Authorize stopped allowing after the connection opened.
func TestRaftGuardChecksEveryRPC(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	var deny atomic.Bool
	srv := startServer(t, n2, func(cfg *Config) {
		cfg.Authorize = func(proto string, id ca.Identity, _ *x509.Certificate) error {
			if proto == ProtoRaft && id.NodeID == n1.ID.NodeID && deny.Load() {
				return errors.New("demoted")
			}
			return nil
		}
	})
	tr2 := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: NewStreamLayer(srv.mux, nil, srv.cfg), MaxPool: 2, Timeout: waitLimit, Logger: hclog.NewNullLogger()})
	t.Cleanup(func() { tr2.Close() })
	got := serveRPCs(t, tr2)
	tr1, _ := newNetTransport(t, n1)
	target := raft.ServerID(n2.ID.NodeID)

	var ae raft.AppendEntriesResponse
	if err := tr1.AppendEntries(target, tr2.LocalAddr(), &raft.AppendEntriesRequest{RPCHeader: header(n1.ID.NodeID), Term: 3}, &ae); err != nil || !ae.Success {
		t.Fatalf("honest AppendEntries = %+v, %v", ae, err)
	}
	// Another manager's name in the header: refused, the connection closed.
	err := tr1.AppendEntries(target, tr2.LocalAddr(), &raft.AppendEntriesRequest{RPCHeader: header(n2.ID.NodeID), Term: 4}, &ae)
	if err == nil {
		t.Fatalf("AppendEntries claiming to be %s was answered: %+v", n2.ID.NodeID, ae)
	}
	srv.log.waitFor(t, "claims to come from")
	var rv raft.RequestVoteResponse
	if err := tr1.RequestVote(target, tr2.LocalAddr(), &raft.RequestVoteRequest{RPCHeader: header("")}, &rv); err == nil {
		t.Fatal("RequestVote naming no server was answered")
	}
	srv.log.waitFor(t, "names no server")
	// A peer that loses its right mid-connection: the next RPC is refused.
	if err := tr1.RequestVote(target, tr2.LocalAddr(), &raft.RequestVoteRequest{RPCHeader: header(n1.ID.NodeID), Term: 5}, &rv); err != nil || !rv.Granted {
		t.Fatalf("honest RequestVote = %+v, %v", rv, err)
	}
	deny.Store(true)
	if err := tr1.RequestVote(target, tr2.LocalAddr(), &raft.RequestVoteRequest{RPCHeader: header(n1.ID.NodeID), Term: 6}, &rv); err == nil {
		t.Fatal("RequestVote of a peer no longer allowed was answered")
	}
	srv.log.waitFor(t, "demoted")
	if want := []string{"append term 3", "vote term 5"}; fmt.Sprint(got.got()) != fmt.Sprint(want) {
		t.Fatalf("raft saw %q; want %q", got.got(), want)
	}
}

// TestRaftGuardPassesSnapshots: an InstallSnapshot's data goes through
// whole, and the connection serves the next RPC after it.
func TestRaftGuardPassesSnapshots(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	tr2, _ := newNetTransport(t, n2)
	got := serveRPCs(t, tr2)
	tr1, _ := newNetTransport(t, n1)
	data := bytes.Repeat([]byte("snapshot-bytes-"), 100_000)
	var resp raft.InstallSnapshotResponse
	err := tr1.InstallSnapshot(raft.ServerID(n2.ID.NodeID), tr2.LocalAddr(), &raft.InstallSnapshotRequest{
		RPCHeader: header(n1.ID.NodeID), SnapshotVersion: raft.SnapshotVersionMax, Term: 2, LastLogIndex: 10, LastLogTerm: 2,
		Configuration: []byte("cfg"), Size: int64(len(data)),
	}, &resp, bytes.NewReader(data))
	if err != nil || !resp.Success {
		t.Fatalf("InstallSnapshot = %+v, %v", resp, err)
	}
	got.mu.Lock()
	same := bytes.Equal(got.snap, data)
	got.mu.Unlock()
	if !same {
		t.Fatal("the snapshot raft received differs from the one sent")
	}
	var ae raft.AppendEntriesResponse
	if err := tr1.AppendEntries(raft.ServerID(n2.ID.NodeID), tr2.LocalAddr(), &raft.AppendEntriesRequest{RPCHeader: header(n1.ID.NodeID), Term: 2,
		Entries: []*raft.Log{{Index: 11, Term: 2, Type: raft.LogCommand, Data: bytes.Repeat([]byte{7}, 70_000)}}}, &ae); err != nil || !ae.Success {
		t.Fatalf("AppendEntries after the snapshot = %+v, %v", ae, err)
	}
}

// TestRevalidateClosesConnections: connections of a peer that is no longer
// allowed — raft accepted and dialed, and the node API — are closed by
// Revalidate, and the others stay open.
func TestRevalidateClosesConnections(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	var denied atomic.Value
	denied.Store("")
	authorize := func(_ string, id ca.Identity, _ *x509.Certificate) error {
		if id.NodeID == denied.Load().(string) {
			return errors.New("removed")
		}
		return nil
	}
	conns2 := NewConnTracker()
	srv2 := startServer(t, n2, func(cfg *Config) { cfg.Authorize, cfg.Conns = authorize, conns2 })
	conns1 := NewConnTracker()
	srv1 := startServer(t, n1, func(cfg *Config) { cfg.Authorize, cfg.Conns = authorize, conns1 })

	// A raft connection from n1 to n2, and a node API connection.
	l2 := NewStreamLayer(srv2.mux, nil, srv2.cfg)
	accepted := make(chan error, 1)
	var acceptedConn io.Reader
	go func() {
		conn, err := l2.Accept()
		acceptedConn = conn
		accepted <- err
	}()
	l1 := NewStreamLayer(srv1.mux, nil, srv1.cfg)
	dialed, err := l1.Dial(raft.ServerAddress(srv2.addr()), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialed.Write([]byte{rpcTimeoutNow}); err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	apiSrv := NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	go apiSrv.Serve(srv2.mux.Listener(ProtoAPI))
	t.Cleanup(func() { apiSrv.Close() })
	client := NewAPIClient(srv1.cfg)
	resp, err := client.Get("https://" + srv2.addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n := conns2.Len(); n != 2 {
		t.Fatalf("n2 tracks %d connections; want 2 (raft and API)", n)
	}
	if n := conns1.Len(); n != 1 {
		t.Fatalf("n1 tracks %d connections; want 1 (its raft dial)", n)
	}
	// Nothing changed: nothing closes.
	if n := conns2.Revalidate(srv2.creds, authorize, time.Now(), nil); n != 0 {
		t.Fatalf("Revalidate closed %d connections of allowed peers", n)
	}
	denied.Store(n1.ID.NodeID)
	if n := conns2.Revalidate(srv2.creds, authorize, time.Now(), nil); n != 2 {
		t.Fatalf("Revalidate closed %d connections; want 2", n)
	}
	if _, err := acceptedConn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the accepted raft connection still reads after Revalidate")
	}
	// n1's side sees its dialed raft connection end.
	if _, err := io.ReadAll(dialed); err != nil && !errors.Is(err, io.EOF) {
		t.Logf("dialed connection ended: %v", err)
	}
	// And n1 closes its dial to n2 when n2 is the one refused.
	denied.Store(n2.ID.NodeID)
	if n := conns1.Revalidate(srv1.creds, authorize, time.Now(), nil); n != 1 {
		t.Fatalf("n1's Revalidate closed %d connections; want 1", n)
	}
}

// TestRevalidateRetiredRoot: after the roots change, a connection whose
// peer certificate chains only to the retired root is closed.
func TestRevalidateRetiredRoot(t *testing.T) {
	old := newCluster(t)
	n1, n2 := old.node(t, ca.RoleManager), old.node(t, ca.RoleManager)
	conns := NewConnTracker()
	srv2 := startServer(t, n2, func(cfg *Config) { cfg.Conns = conns })
	l2 := NewStreamLayer(srv2.mux, nil, srv2.cfg)
	accepted := make(chan error, 1)
	go func() {
		_, err := l2.Accept()
		accepted <- err
	}()
	srv1 := startServer(t, n1, nil)
	dialed, err := NewStreamLayer(srv1.mux, nil, srv1.cfg).Dial(raft.ServerAddress(srv2.addr()), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer dialed.Close()
	dialed.Write([]byte{rpcTimeoutNow})
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	if n := conns.Revalidate(srv2.creds, nil, time.Now(), nil); n != 0 {
		t.Fatalf("closed %d under the same roots", n)
	}
	// The certificates are checked at the node's clock, not the host's:
	// a node whose clock is years ahead finds the peer's expired. The
	// connection stays tracked until closed.
	// A clock gone back before the certificates were issued closes
	// nothing: the handshake accepted them.
	if n := conns.Revalidate(srv2.creds, nil, time.Now().Add(-90*time.Minute), nil); n != 0 {
		t.Fatalf("closed %d at a clock behind the peer's certificate; want 0", n)
	}
	if n := conns.Revalidate(srv2.creds, nil, time.Now().AddDate(10, 0, 0), nil); n != 1 {
		t.Fatalf("closed %d at a clock past the peer's certificate; want 1", n)
	}
	dialed2, err := NewStreamLayer(srv1.mux, nil, srv1.cfg).Dial(raft.ServerAddress(srv2.addr()), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer dialed2.Close()
	go func() {
		_, err := l2.Accept()
		accepted <- err
	}()
	dialed2.Write([]byte{rpcTimeoutNow})
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	// The node now trusts only another root (the rotation finished).
	other := newCluster(t)
	next := *n2
	next.Roots = other.node(t, ca.RoleManager).Roots
	srv2.creds.Store(&next)
	if n := conns.Revalidate(srv2.creds, nil, time.Now(), nil); n != 1 {
		t.Fatalf("closed %d after the root changed; want 1", n)
	}
}
