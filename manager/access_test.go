package manager

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/transport"
)

// fakeRaft is raft as access sees it: a real FSM, applied to directly,
// and a configuration the test sets.
type fakeRaft struct {
	t   *testing.T
	f   *fsm.FSM
	at  time.Time // AppendedAt of every entry
	mu  sync.Mutex
	ids []string
}

func (r *fakeRaft) state() *fsm.FSM { return r.f }

func (r *fakeRaft) servers() []raft.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []raft.Server
	for _, id := range r.ids {
		out = append(out, raft.Server{ID: raft.ServerID(id), Suffrage: raft.Voter})
	}
	return out
}

func (r *fakeRaft) setServers(ids ...string) {
	r.mu.Lock()
	r.ids = ids
	r.mu.Unlock()
}

func (r *fakeRaft) apply(c fsm.Command) {
	r.t.Helper()
	b, err := fsm.Encode(c)
	if err != nil {
		r.t.Fatal(err)
	}
	if res := r.f.Apply(&raft.Log{Index: r.f.Index() + 1, Type: raft.LogCommand, Data: b, AppendedAt: r.at}); res.(*fsm.Result).Err != nil {
		r.t.Fatal(res.(*fsm.Result).Err)
	}
}

// newAccessState is a cluster of managers m1 and m2 (m2 not yet in raft's
// configuration), worker w1, demoted manager d1, and removed worker r1,
// with every entry appended at `at`.
func newAccessState(t *testing.T, at time.Time) (*fakeRaft, *access) {
	r := &fakeRaft{t: t, f: fsm.New(nil), at: at}
	r.apply(&fsm.ClusterInit{Cluster: fsm.Cluster{ID: "c1", Settings: fsm.Settings{CertExpiry: time.Hour, KeyRotation: time.Minute}}, First: fsm.Node{ID: "m1", Role: roleManager}})
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: "m2", Role: roleManager}})
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: "w1", Role: roleWorker}})
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: "d1", Role: roleManager}})
	r.apply(&fsm.NodeSetRole{ID: "d1", Role: roleWorker})
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: "r1", Role: roleWorker}})
	r.apply(&fsm.NodeRemove{ID: "r1", Until: time.Now().Add(time.Hour)})
	r.setServers("m1", "d1")
	a := &access{raft: func() peerSource { return r }, trusted: func(*tls.ConnectionState) bool { return true }, now: time.Now}
	return r, a
}

// leafAt is a certificate, as access reads it, issued at t.
func leafAt(t time.Time, serial int64) *x509.Certificate {
	return &x509.Certificate{NotBefore: t.Add(-ca.LeafBackdate), SerialNumber: big.NewInt(serial)}
}

// TestAccessDecision: who may speak raft and the node API, from the
// replicated state and raft's configuration (docs/DESIGN-NOTES.md, "Who
// may speak").
func TestAccessDecision(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	raftP, apiP := transport.ProtoRaft, transport.ProtoAPI
	for _, tc := range []struct {
		name      string
		proto     string
		node      string
		certRole  ca.Role
		leaf      *x509.Certificate
		ok, open  bool    // authorize, authorizeOpen
		wantRole  ca.Role // peerRole, "" when refused
		wantError error
	}{
		{name: "raft: a manager in the configuration", proto: raftP, node: "m1", certRole: roleManager, ok: true, open: true, wantRole: roleManager},
		// The state decides: raft's configuration may lag it (a manager
		// being added, seen by one whose log stops between the two).
		{name: "raft: a manager raft does not name yet", proto: raftP, node: "m2", certRole: roleManager, ok: true, open: true, wantRole: roleManager},
		{name: "raft: a worker", proto: raftP, node: "w1", certRole: roleWorker, wantRole: roleWorker, wantError: fsm.ErrNotManager},
		{name: "raft: a demoted manager's certificate, still in the configuration", proto: raftP, node: "d1", certRole: roleManager, wantRole: roleWorker, wantError: fsm.ErrNotManager},
		{name: "raft: a removed node", proto: raftP, node: "r1", certRole: roleWorker, wantError: fsm.ErrNodeRemoved},
		{name: "raft: an unknown node with an old certificate", proto: raftP, node: "x1", certRole: roleManager, leaf: leafAt(at.Add(-time.Minute), 1), wantError: fsm.ErrUnknownNode},
		{name: "raft: an unknown node with a certificate newer than the state", proto: raftP, node: "x1", certRole: roleManager, leaf: leafAt(at.Add(time.Minute), 2), ok: true, open: true, wantError: fsm.ErrUnknownNode},
		{name: "api: a worker", proto: apiP, node: "w1", certRole: roleWorker, ok: true, open: true, wantRole: roleWorker},
		{name: "api: a demoted manager counts as a worker", proto: apiP, node: "d1", certRole: roleManager, ok: true, open: true, wantRole: roleWorker},
		{name: "api: a removed node connects, to be told, but loses an open connection", proto: apiP, node: "r1", certRole: roleWorker, ok: true, wantError: fsm.ErrNodeRemoved},
		{name: "api: an unknown node", proto: apiP, node: "x1", certRole: roleWorker, wantError: fsm.ErrUnknownNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, a := newAccessState(t, at)
			id := ca.Identity{NodeID: tc.node, Role: tc.certRole, ClusterID: "c1"}
			if err := a.authorize(tc.proto, id, tc.leaf); (err == nil) != tc.ok {
				t.Errorf("authorize: got %v; want allowed %v", err, tc.ok)
			} else if err != nil && tc.wantError != nil && !errors.Is(err, tc.wantError) {
				t.Errorf("authorize: got %v; want %v", err, tc.wantError)
			}
			if err := a.authorizeOpen(tc.proto, id, tc.leaf); (err == nil) != tc.open {
				t.Errorf("authorizeOpen: got %v; want allowed %v", err, tc.open)
			}
			role, err := a.peerRole(id)
			if role != tc.wantRole && !(tc.wantRole == "" && err != nil) {
				t.Errorf("peerRole: got %q (%v); want %q", role, err, tc.wantRole)
			}
		})
	}
}

// TestAccessWithoutRaft: a worker runs no raft and holds no state; it
// authorizes its managers by certificate alone.
func TestAccessWithoutRaft(t *testing.T) {
	a := &access{raft: func() peerSource { return nil }, now: time.Now}
	id := ca.Identity{NodeID: "anyone", Role: roleManager}
	for _, proto := range []string{transport.ProtoRaft, transport.ProtoAPI} {
		if err := a.authorize(proto, id, nil); err != nil {
			t.Errorf("%s: %v; want allowed", proto, err)
		}
	}
	if role, err := a.peerRole(id); role != roleManager || err != nil {
		t.Errorf("peerRole: %q, %v; want the certificate's role", role, err)
	}
}

// TestAccessCachesUntilTheGenerationMoves: an allowed peer (here a node the
// state does not know, allowed while raft's configuration names it) is not asked
// about again until the access generation moves (the raft guard asks on
// every RPC), and a refusal is never cached.
func TestAccessCachesUntilTheGenerationMoves(t *testing.T) {
	r, a := newAccessState(t, time.Now())
	m9 := ca.Identity{NodeID: "m9", Role: roleManager} // unknown to the state
	leaf := leafAt(time.Now().Add(-time.Hour), 7)

	if err := a.authorize(transport.ProtoRaft, m9, leaf); err == nil {
		t.Fatal("m9 allowed before raft's configuration names it")
	}
	r.setServers("m1", "m2", "m9")
	if err := a.authorize(transport.ProtoRaft, m9, leaf); err != nil {
		t.Fatalf("m9 refused once raft names it (a refusal was cached?): %v", err)
	}
	// raft drops m9, but nothing the state says moved: the cached grant
	// stands (watch re-checks open connections when the state moves).
	r.setServers("m1", "m2")
	if err := a.authorize(transport.ProtoRaft, m9, leaf); err != nil {
		t.Fatalf("m9 refused while its grant is of the current generation: %v", err)
	}
	gen := r.f.AccessGeneration()
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: "w9", Role: roleWorker}})
	if r.f.AccessGeneration() == gen {
		t.Fatal("adding a node did not move the access generation")
	}
	if err := a.authorize(transport.ProtoRaft, m9, leaf); err == nil {
		t.Fatal("m9 still allowed after the generation moved and raft dropped it")
	}
	// Another certificate of the same node is a peer of its own.
	r.setServers("m1", "m2", "m9")
	if err := a.authorize(transport.ProtoRaft, m9, leaf); err != nil {
		t.Fatal(err)
	}
	r.setServers("m1", "m2")
	if err := a.authorize(transport.ProtoRaft, m9, leafAt(time.Now().Add(-time.Hour), 8)); err == nil {
		t.Fatal("a new certificate of m9 was allowed by the grant of another")
	}
}

// TestAccessPeerOf: the node API reads each request's caller from its
// certificate and asks again: a known node gets the role the state gives
// it, if its chain is trusted now; a removed node is named removed (every
// route then tells it so); anything else is refused.
func TestAccessPeerOf(t *testing.T) {
	now := time.Now()
	clusterID := ca.NewID()
	root, err := ca.NewRoot(clusterID, now)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(role ca.Role) (ca.Identity, *tls.ConnectionState) {
		t.Helper()
		key, err := ca.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := ca.NewCSR(key)
		if err != nil {
			t.Fatal(err)
		}
		id := ca.Identity{NodeID: ca.NewID(), Role: role, ClusterID: clusterID}
		certPEM, err := root.Issue(csr, id, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := ca.ParseCertPEM(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		return id, &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: certs}
	}
	worker, workerTLS := issue(roleWorker)
	demoted, demotedTLS := issue(roleManager)
	removed, removedTLS := issue(roleWorker)
	_, unknownTLS := issue(roleWorker)
	_, untrustedTLS := issue(roleWorker)

	r := &fakeRaft{t: t, f: fsm.New(nil)}
	r.apply(&fsm.ClusterInit{Cluster: fsm.Cluster{ID: clusterID, Settings: fsm.Settings{CertExpiry: time.Hour, KeyRotation: time.Minute}}, First: fsm.Node{ID: ca.NewID(), Role: roleManager}})
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: worker.NodeID, Role: roleWorker}})
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: demoted.NodeID, Role: roleWorker}})
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: removed.NodeID, Role: roleWorker}})
	r.apply(&fsm.NodeRemove{ID: removed.NodeID, Until: now.Add(time.Hour)})
	untrusted, _ := transport.PeerIdentity(untrustedTLS)
	r.apply(&fsm.NodeAdd{Node: fsm.Node{ID: untrusted.NodeID, Role: roleWorker}})
	a := &access{
		raft:    func() peerSource { return r },
		trusted: func(cs *tls.ConnectionState) bool { return cs != untrustedTLS },
		now:     time.Now,
	}

	for _, tc := range []struct {
		name   string
		tls    *tls.ConnectionState
		want   api.Peer
		wantOK bool
	}{
		{"a worker", workerTLS, api.Peer{NodeID: worker.NodeID, Role: roleWorker}, true},
		{"a demoted manager's certificate", demotedTLS, api.Peer{NodeID: demoted.NodeID, Role: roleWorker}, true},
		{"a removed node", removedTLS, api.Peer{NodeID: removed.NodeID, Role: removed.Role, Removed: true}, true},
		{"an unknown node", unknownTLS, api.Peer{}, false},
		{"a chain not trusted now", untrustedTLS, api.Peer{}, false},
		{"no certificate", nil, api.Peer{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/internal/v1/self", nil)
			req.TLS = tc.tls
			got, ok := a.peerOf(req)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("got %+v, %v; want %+v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
