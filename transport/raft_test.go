package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/ca"
)

func newNetTransport(t testing.TB, creds *Credentials) (*raft.NetworkTransport, *server) {
	t.Helper()
	srv := startServer(t, creds, nil)
	stream := NewStreamLayer(srv.mux, nil, srv.cfg)
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 2,
		Timeout: waitLimit,
		Logger:  hclog.NewNullLogger(),
	})
	t.Cleanup(func() { tr.Close() })
	return tr, srv
}

func TestStreamLayerRPC(t *testing.T) {
	c := newCluster(t)
	n1, n2 := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	tr1, _ := newNetTransport(t, n1)
	tr2, _ := newNetTransport(t, n2)

	served := make(chan error, 1)
	go func() {
		for range 2 {
			rpc := <-tr2.Consumer()
			switch cmd := rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				rpc.Respond(&raft.AppendEntriesResponse{Term: cmd.Term, LastLog: 99, Success: true}, nil)
			case *raft.RequestVoteRequest:
				rpc.Respond(&raft.RequestVoteResponse{Term: cmd.Term, Granted: true}, nil)
			default:
				served <- fmt.Errorf("unexpected rpc %T", cmd)
				return
			}
		}
		served <- nil
	}()

	var ae raft.AppendEntriesResponse
	err := tr1.AppendEntries(raft.ServerID(n2.ID.NodeID), tr2.LocalAddr(), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte(n1.ID.NodeID), Addr: []byte(tr1.LocalAddr())},
		Term:      7,
		Entries:   []*raft.Log{{Index: 1, Term: 7, Type: raft.LogCommand, Data: []byte("hello")}},
	}, &ae)
	if err != nil || !ae.Success || ae.Term != 7 || ae.LastLog != 99 {
		t.Fatalf("AppendEntries = %+v, %v", ae, err)
	}
	var rv raft.RequestVoteResponse
	err = tr1.RequestVote(raft.ServerID(n2.ID.NodeID), tr2.LocalAddr(), &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ID: []byte(n1.ID.NodeID), Addr: []byte(tr1.LocalAddr())},
		Term:      8,
	}, &rv)
	if err != nil || !rv.Granted || rv.Term != 8 {
		t.Fatalf("RequestVote = %+v, %v", rv, err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestStreamLayerRefusesWorker(t *testing.T) {
	c := newCluster(t)
	mgr := c.node(t, ca.RoleManager)
	_, srv := newNetTransport(t, mgr)
	worker := c.node(t, ca.RoleWorker)
	// A worker has no raft listener, but it can try to dial one.
	wsrv := startServer(t, worker, nil)
	stream := NewStreamLayer(wsrv.mux, nil, wsrv.cfg)
	conn, err := stream.Dial(raft.ServerAddress(srv.addr()), waitLimit)
	err = refusedByServer(t, asTLS(conn), err)
	t.Logf("worker dial refused: %v", err)
	srv.log.waitFor(t, "a manager is required")
	// And a manager refuses to dial a worker's raft port.
	wsrv.mux.Listener(ProtoRaft)
	mstream := NewStreamLayer(srv.mux, nil, srv.cfg)
	if _, err := mstream.Dial(raft.ServerAddress(wsrv.addr()), waitLimit); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("manager dialing worker: %v; want ErrPeerRefused", err)
	}
}

func asTLS(c net.Conn) *tls.Conn {
	if c == nil {
		return nil
	}
	return c.(*tls.Conn)
}

// fsm records applied commands and signals each one.
type fsm struct {
	mu      sync.Mutex
	applied []string
	ch      chan string
}

func (f *fsm) Apply(l *raft.Log) any {
	f.mu.Lock()
	f.applied = append(f.applied, string(l.Data))
	f.mu.Unlock()
	f.ch <- string(l.Data)
	return nil
}
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("not supported") }
func (f *fsm) Restore(io.ReadCloser) error         { return errors.New("not supported") }

func TestRaftClusterOverMux(t *testing.T) {
	c := newCluster(t)
	creds := []*Credentials{c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)}
	var servers []raft.Server
	var trs []*raft.NetworkTransport
	for _, cr := range creds {
		tr, _ := newNetTransport(t, cr)
		trs = append(trs, tr)
		servers = append(servers, raft.Server{ID: raft.ServerID(cr.ID.NodeID), Address: tr.LocalAddr()})
	}
	var nodes []*raft.Raft
	var fsms []*fsm
	for i, cr := range creds {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(cr.ID.NodeID)
		conf.HeartbeatTimeout = 100 * time.Millisecond
		conf.ElectionTimeout = 100 * time.Millisecond
		conf.LeaderLeaseTimeout = 100 * time.Millisecond
		conf.CommitTimeout = 5 * time.Millisecond
		conf.Logger = hclog.NewNullLogger()
		store := raft.NewInmemStore()
		snaps := raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(conf, store, store, snaps, trs[i], raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		f := &fsm{ch: make(chan string, 16)}
		r, err := raft.NewRaft(conf, f, store, store, snaps, trs[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Shutdown().Error() })
		nodes = append(nodes, r)
		fsms = append(fsms, f)
	}
	// Wait for a leader and apply through it; if it loses leadership before
	// the entry commits, wait for the next one.
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for applied := false; !applied; {
		var leader *raft.Raft
		for leader == nil {
			select {
			case v := <-nodes[0].LeaderCh():
				if v {
					leader = nodes[0]
				}
			case v := <-nodes[1].LeaderCh():
				if v {
					leader = nodes[1]
				}
			case <-deadline.C:
				t.Fatal("no leader elected")
			}
		}
		applied = leader.Apply([]byte("secret-v1"), waitLimit).Error() == nil
	}
	for i, f := range fsms {
		select {
		case got := <-f.ch:
			if got != "secret-v1" {
				t.Errorf("node %d applied %q", i, got)
			}
		case <-time.After(waitLimit):
			t.Fatalf("node %d did not apply the command", i)
		}
	}
}

// A raft RPC for a server that has left reaches nobody, even when another
// manager now listens at its address: the address book names the server,
// and the stream layer checks the certificate of whoever answers.
func TestRaftAddressBookNamesTheServer(t *testing.T) {
	c := newCluster(t)
	n1, n2, gone := c.node(t, ca.RoleManager), c.node(t, ca.RoleManager), c.node(t, ca.RoleManager)
	srv2 := startServer(t, n2, nil)
	accepted := acceptAll(t, srv2.mux.Listener(ProtoRaft))
	book := NewRaftAddressBook()
	config := []raft.Server{
		{ID: raft.ServerID(n2.ID.NodeID), Address: raft.ServerAddress(srv2.addr())},
		{ID: raft.ServerID(gone.ID.NodeID), Address: raft.ServerAddress(srv2.addr())},
	}
	book.SetConfiguration(func() []raft.Server { return config })
	if _, err := book.ServerAddr("nobody"); err == nil {
		t.Fatal("an unknown server has an address")
	}
	// The departed server leaves the configuration; the book remembers it.
	goneAddr, _ := book.ServerAddr(raft.ServerID(gone.ID.NodeID))
	config = config[:1]
	if again, err := book.ServerAddr(raft.ServerID(gone.ID.NodeID)); err != nil || again != goneAddr {
		t.Fatalf("the book forgot a server that left: %q, %v", again, err)
	}

	stream := NewStreamLayer(startServer(t, n1, nil).mux, nil, clientCfg(n1))
	addr, err := book.ServerAddr(raft.ServerID(n2.ID.NodeID))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := stream.Dial(addr, waitLimit)
	if err != nil {
		t.Fatalf("dial the server named: %v", err)
	}
	roundTrip(t, conn, accepted, "append")
	conn.Close()
	if _, err := stream.Dial(goneAddr, waitLimit); !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("dial a departed server at an address another now holds: %v; want ErrWrongPeer", err)
	}
	// Plain addresses (no book) still dial whoever is there.
	if conn, err := stream.Dial(raft.ServerAddress(srv2.addr()), waitLimit); err != nil {
		t.Fatalf("plain dial: %v", err)
	} else {
		conn.Close()
	}
}
