package manager

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/overlaykeys"
	"github.com/holdfast/holdfast/transport"
)

// The adversary's view: a credential the cluster has retired, or never
// issued, tried on every protocol. Every cell must be refused and leave
// every manager's state as it was.

// stateDigest is a digest of what an attacker of these protocols would
// change in a manager's replicated state: the cluster (CA, tokens,
// settings, unlock key), who is a member with which role, the deny list,
// the secrets and the data-plane keys. Fields a running cluster updates on
// its own (node records' levels, gossip addresses, certificate records)
// are left out, so background writes do not look like an attack.
func stateDigest(t *testing.T, tn *testNode) (string, uint64) {
	t.Helper()
	var doc []byte
	var index uint64
	var err error
	tn.node.current().rn().fsm.Read(func(s *fsm.State, i uint64) {
		roles := map[string]ca.Role{}
		for id, n := range s.Nodes {
			roles[id] = n.Role
		}
		var secretIDs []string
		for _, sec := range s.Secrets.List() {
			secretIDs = append(secretIDs, sec.ID+"/"+sec.Name)
		}
		doc, err = json.Marshal(struct {
			Cluster *fsm.Cluster
			Roles   map[string]ca.Role
			Removed map[string]time.Time
			Secrets []string
			Keys    overlaykeys.Keyrings
		}{s.Cluster, roles, s.Removed, secretIDs, s.Keys})
		index = i
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:8]), index
}

// settledDigest waits until every manager holds the same state and
// returns its digest.
func settledDigest(t *testing.T, managers []*testNode) string {
	t.Helper()
	var digest string
	eventually(t, 20*time.Second, "every manager to hold the same state", func() bool {
		first, _ := stateDigest(t, managers[0])
		for _, m := range managers[1:] {
			if d, _ := stateDigest(t, m); d != first {
				return false
			}
		}
		digest = first
		return true
	})
	return digest
}

// raftAttacker speaks raft with a given certificate, through a real
// NetworkTransport and the holdfast stream layer.
type raftAttacker struct {
	trans *raft.NetworkTransport
	id    string
}

func newRaftAttacker(t *testing.T, creds *transport.Credentials) *raftAttacker {
	t.Helper()
	cfg := transport.Config{Creds: transport.NewCredStore(creds), HandshakeTimeout: 5 * time.Second}
	mux, err := transport.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: transport.NewStreamLayer(mux, nil, cfg), MaxPool: 1, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
	})
	t.Cleanup(func() {
		trans.Close()
		mux.Close()
	})
	return &raftAttacker{trans: trans, id: creds.ID.NodeID}
}

// raftTarget is what an attacker needs to know of a follower to make an
// RPC it would act on.
type raftTarget struct {
	id, addr          string
	term, last, lterm uint64
}

func targetOf(t *testing.T, tn *testNode) raftTarget {
	t.Helper()
	rn := tn.node.current().rn()
	stats := rn.r.Stats()
	lterm, _ := strconv.ParseUint(stats["last_log_term"], 10, 64)
	return raftTarget{id: tn.node.current().info.NodeID, addr: tn.status().Addr, term: rn.r.CurrentTerm(), last: rn.r.LastIndex(), lterm: lterm}
}

func (a *raftAttacker) header() raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(a.id), Addr: []byte(a.trans.LocalAddr())}
}

// appendEntries sends, at term+1, an entry that would replace the
// manager join token with one the attacker chose.
func (a *raftAttacker) appendEntries(tg raftTarget) error {
	cmd, err := fsm.Encode(&fsm.TokenRotate{Role: ca.RoleManager, Token: "HFTKN-1-attacker"})
	if err != nil {
		return err
	}
	var resp raft.AppendEntriesResponse
	err = a.trans.AppendEntries(raft.ServerID(tg.id), raft.ServerAddress(tg.addr), &raft.AppendEntriesRequest{
		RPCHeader: a.header(), Term: tg.term + 1, PrevLogEntry: tg.last, PrevLogTerm: tg.lterm,
		Entries:           []*raft.Log{{Index: tg.last + 1, Term: tg.term + 1, Type: raft.LogCommand, Data: cmd, AppendedAt: time.Now()}},
		LeaderCommitIndex: tg.last + 1,
	}, &resp)
	if err == nil {
		return fmt.Errorf("answered: success=%v term=%d", resp.Success, resp.Term)
	}
	return err
}

func (a *raftAttacker) requestVote(tg raftTarget) error {
	var resp raft.RequestVoteResponse
	err := a.trans.RequestVote(raft.ServerID(tg.id), raft.ServerAddress(tg.addr), &raft.RequestVoteRequest{
		RPCHeader: a.header(), Term: tg.term + 1, LastLogIndex: tg.last + 100, LastLogTerm: tg.term + 1,
	}, &resp)
	if err == nil {
		return fmt.Errorf("answered: granted=%v term=%d", resp.Granted, resp.Term)
	}
	return err
}

func (a *raftAttacker) installSnapshot(tg raftTarget) error {
	data := bytes.Repeat([]byte("forged snapshot "), 64)
	var resp raft.InstallSnapshotResponse
	err := a.trans.InstallSnapshot(raft.ServerID(tg.id), raft.ServerAddress(tg.addr), &raft.InstallSnapshotRequest{
		RPCHeader: a.header(), SnapshotVersion: raft.SnapshotVersionMax, Term: tg.term + 1,
		LastLogIndex: tg.last + 100, LastLogTerm: tg.term + 1, Size: int64(len(data)),
	}, &resp, bytes.NewReader(data))
	if err == nil {
		return fmt.Errorf("answered: success=%v term=%d", resp.Success, resp.Term)
	}
	return err
}

// loadCreds parses test credentials, verified at issue.
func loadCreds(t *testing.T, certPEM, keyPEM, rootPEM []byte) *transport.Credentials {
	t.Helper()
	c, err := transport.LoadCredentials(certPEM, keyPEM, rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// expiredTwin returns an expired certificate for creds' identity and key,
// issued by root, with a request signed by that key, as /join/recover
// wants them.
func expiredTwin(t *testing.T, root *ca.Root, creds *transport.Credentials) (certPEM, csr []byte) {
	t.Helper()
	key, ok := creds.Cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("key of type %T", creds.Cert.PrivateKey)
	}
	csr, _ = ca.NewCSR(key)
	certPEM, err := root.Issue(csr, creds.ID, 30*time.Minute, time.Now().Add(-55*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, csr
}

// rawRaftConn dials raft with creds and returns the connection, through
// which the test speaks raft's wire format by hand.
func rawRaftConn(t *testing.T, creds *transport.Credentials, addr string) net.Conn {
	t.Helper()
	cfg := transport.Config{Creds: transport.NewCredStore(creds), HandshakeTimeout: 5 * time.Second}
	mux, err := transport.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	conn, err := transport.NewStreamLayer(mux, nil, cfg).Dial(raft.ServerAddress(addr), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// staleVote sends, on conn, a RequestVote for the target's current term
// (which it refuses without changing anything) and returns raft's answer.
func staleVote(conn net.Conn, id string, tg raftTarget) (*raft.RequestVoteResponse, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	w := bufio.NewWriter(conn)
	w.WriteByte(1) // rpcRequestVote
	h := &codec.MsgpackHandle{}
	if err := codec.NewEncoder(w, h).Encode(&raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("127.0.0.1:1")},
		Term:      tg.term, LastLogIndex: 0, LastLogTerm: 0,
	}); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	dec := codec.NewDecoder(bufio.NewReader(conn), h)
	var rpcErr string
	if err := dec.Decode(&rpcErr); err != nil {
		return nil, err
	}
	var resp raft.RequestVoteResponse
	if err := dec.Decode(&resp); err != nil {
		return nil, err
	}
	if rpcErr != "" {
		return nil, errors.New(rpcErr)
	}
	return &resp, nil
}

// connClosedWithin reports nil if the peer closes conn within d.
func connClosedWithin(conn net.Conn, d time.Duration) error {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := conn.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case err == nil:
		return errors.New("the server sent data unasked")
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("still open after %v", d)
	}
	return nil
}

// TestRetiredCredentials tries every retired (or never issued) credential
// on every protocol: raft (AppendEntries, RequestVote, InstallSnapshot,
// by hand), the node API, join, recover and gossip. Every cell must be
// refused, and every manager's state must be unchanged after. Raft
// connections opened before a demotion or a removal are closed within a
// second of it. The table is printed in the test log.
func TestRetiredCredentials(t *testing.T) {
	c := newCluster(t, 4, 2)
	l := c.leader()
	fol := c.followers(l)
	target, demoted, removedMgr := fol[0], fol[1], fol[2]
	w0, w1 := c.workers[0], c.workers[1]
	oldRoot := clusterRoot(t, l)
	credsOf := func(tn *testNode) *transport.Credentials { return tn.node.current().creds.Load() }
	// An old-root certificate of a manager that is a member all along,
	// and the tokens of the old root; then the root is rotated, and every
	// other credential below is one of the new root.
	oldRootPEM, oldRootKey := issueFor(t, oldRoot, ca.Identity{NodeID: target.node.current().info.NodeID, Role: ca.RoleManager, ClusterID: oldRoot.ClusterID()}, time.Now(), time.Hour)
	oldRootCreds := loadCreds(t, oldRootPEM, oldRootKey, oldRoot.CertPEM())
	preRotationToken := c.init.WorkerToken
	if _, err := l.client.RotateCA(ctxT(t), api.CARotateRequest{}); err != nil {
		t.Fatal(err)
	}
	waitRotation(t, l.client, 60*time.Second)
	newRoot := clusterRoot(t, l)
	for _, tn := range append(append([]*testNode{}, c.managers...), c.workers...) {
		eventually(t, 20*time.Second, tn.name+" on the new root", func() bool {
			return ca.IssuedBy(credsOf(tn).Cert.Leaf, newRoot)
		})
	}
	demotedCreds, removedMgrCreds, removedCreds, workerCreds := credsOf(demoted), credsOf(removedMgr), credsOf(w0), credsOf(w1)
	// A certificate the cluster issued a while ago for a node it has no
	// record of (a join whose record was lost, a state restored from an
	// older backup).
	unknownPEM, unknownKey := issueFor(t, newRoot, ca.Identity{NodeID: ca.NewID(), Role: ca.RoleManager, ClusterID: newRoot.ClusterID()}, time.Now().Add(-10*time.Minute), time.Hour)
	unknownCreds := loadCreds(t, unknownPEM, unknownKey, newRoot.CertPEM())
	// The leader creates the data-plane keyrings after the cluster forms.
	start := time.Now()
	eventually(t, 20*time.Second, "the gossip keyring", func() bool {
		var ok bool
		l.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) { ok = s.Keys.Ring(overlaykeys.Gossip) != nil })
		return ok
	})
	t.Logf("gossip keyring after %v", time.Since(start))
	var removedGossip [][]byte
	l.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) {
		for _, k := range s.Keys.Ring(overlaykeys.Gossip).Keys {
			removedGossip = append(removedGossip, bytes.Clone(k.Material))
		}
	})

	// Raft connections opened before the demotion and the removal, served.
	tg := targetOf(t, target)
	heldDemoted := rawRaftConn(t, demotedCreds, tg.addr)
	heldRemoved := rawRaftConn(t, removedMgrCreds, tg.addr)
	for _, h := range []struct {
		conn net.Conn
		id   string
	}{{heldDemoted, demotedCreds.ID.NodeID}, {heldRemoved, removedMgrCreds.ID.NodeID}} {
		if _, err := staleVote(h.conn, h.id, tg); err != nil {
			t.Fatalf("raft connection of %s before it was retired: %v", h.id, err)
		}
	}

	// Retire: demote one manager, remove another (--force) and a worker.
	if err := l.client.Demote(ctxT(t), demotedCreds.ID.NodeID); err != nil {
		t.Fatal(err)
	}
	if err := connClosedWithin(heldDemoted, time.Second); err != nil {
		t.Errorf("demoted manager's raft connection opened before the demotion: %v; want closed within 1s", err)
	}
	if err := l.client.RemoveNode(ctxT(t), removedMgrCreds.ID.NodeID, true); err != nil {
		t.Fatal(err)
	}
	if err := connClosedWithin(heldRemoved, time.Second); err != nil {
		t.Errorf("removed manager's raft connection opened before node rm --force: %v; want closed within 1s", err)
	}
	removedMgr.stop()
	if err := l.client.RemoveNode(ctxT(t), removedCreds.ID.NodeID, false); err != nil {
		t.Fatal(err)
	}
	w0.stop()
	eventually(t, 20*time.Second, "the demoted manager to run as a worker", func() bool {
		inc := demoted.node.current()
		return inc != nil && inc.rn() == nil && inc.creds.Load().ID.Role == ca.RoleWorker
	})
	tokenBefore, err := l.client.JoinToken(ctxT(t), "manager")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.client.RotateJoinToken(ctxT(t), "manager"); err != nil {
		t.Fatal(err)
	}
	rotatedToken := tokenBefore.Token
	managers := []*testNode{l, target}
	before := settledDigest(t, managers)
	tg = targetOf(t, target)

	type row struct {
		name  string
		creds *transport.Credentials // nil: the row is a token
		root  *ca.Root               // issues its expired twin for recover
		token string                 // for join
	}
	rows := []row{
		{"demoted manager's certificate", demotedCreds, newRoot, ""},
		{"removed node's certificate", removedCreds, newRoot, ""},
		{"unknown node's certificate", unknownCreds, newRoot, ""},
		{"certificate of the retired root", oldRootCreds, oldRoot, preRotationToken},
		{"worker's certificate", workerCreds, newRoot, ""},
		{"rotated join token", nil, nil, rotatedToken},
	}
	gossipAddr := target.status().Gossip.Addr
	cols := []struct {
		name string
		try  func(r row) (string, error) // a reason the cell does not apply, or the refusal
	}{
		{"raft AppendEntries", func(r row) (string, error) {
			if r.creds == nil {
				return "a token is no raft credential", nil
			}
			return "", newRaftAttacker(t, r.creds).appendEntries(tg)
		}},
		{"raft RequestVote", func(r row) (string, error) {
			if r.creds == nil {
				return "a token is no raft credential", nil
			}
			return "", newRaftAttacker(t, r.creds).requestVote(tg)
		}},
		{"raft InstallSnapshot", func(r row) (string, error) {
			if r.creds == nil {
				return "a token is no raft credential", nil
			}
			return "", newRaftAttacker(t, r.creds).installSnapshot(tg)
		}},
		{"node API (manager route)", func(r row) (string, error) {
			if r.creds == nil {
				return "a token is no node API credential", nil
			}
			hc := transport.NewAPIClient(transport.Config{Creds: transport.NewCredStore(r.creds)})
			defer hc.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := api.NewClient(hc, "https://"+tg.addr).RotateJoinTokenForwarded(ctx, "manager")
			return "", errOrServed(err)
		}},
		{"node API (any route)", func(r row) (string, error) {
			switch {
			case r.creds == nil:
				return "a token is no node API credential", nil
			case r.creds == demotedCreds || r.creds == workerCreds:
				return "a member: workers' routes are its right", nil
			}
			hc := transport.NewAPIClient(transport.Config{Creds: transport.NewCredStore(r.creds)})
			defer hc.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := api.NewClient(hc, "https://"+tg.addr).ClusterStatus(ctx)
			return "", errOrServed(err)
		}},
		{"join", func(r row) (string, error) {
			if r.token == "" {
				return "joining presents a token, not a certificate", nil
			}
			tok, err := ca.ParseToken(r.token)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := ca.NewKey()
			csr, _ := ca.NewCSR(key)
			jc := transport.NewJoinClient(tok.CADigest, 5*time.Second, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = api.NewClient(jc, "https://"+tg.addr).Grant(ctx, api.JoinGrantRequest{Token: r.token, CSR: csr, Addr: "127.0.0.1:1"})
			return "", errOrServed(err)
		}},
		{"recover", func(r row) (string, error) {
			if r.creds == nil {
				return "a token is no certificate", nil
			}
			certPEM, csr := expiredTwin(t, r.root, r.creds)
			jc := transport.NewJoinClient(newRoot.Digest(), 5*time.Second, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := api.NewClient(jc, "https://"+tg.addr).Recover(ctx, api.RecoverRequest{CertPEM: certPEM, CSR: csr})
			return "", errOrServed(err)
		}},
		{"gossip", func(r row) (string, error) {
			if r.creds != removedCreds {
				return "gossip takes keys, not certificates: only the removed node held any it should no longer have", nil
			}
			g, err := transport.StartGossip(transport.GossipConfig{
				NodeID: r.creds.ID.NodeID, ClusterID: r.creds.ID.ClusterID, BindAddr: "127.0.0.1:0", AdvertiseHost: "127.0.0.1",
				Keys: removedGossip, Primary: removedGossip[len(removedGossip)-1], Tune: fastGossip,
				NewLogger: func(func(slog.Level, string) slog.Level) *log.Logger { return log.New(io.Discard, "", 0) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Shutdown(false)
			if _, err := g.Join([]string{gossipAddr}); err != nil {
				return "", err
			}
			return "", errors.New("joined the cluster's gossip")
		}},
	}

	var table strings.Builder
	fmt.Fprintf(&table, "\n%-32s", "credential \\ protocol")
	for _, col := range cols {
		fmt.Fprintf(&table, " | %-24s", col.name)
	}
	for _, r := range rows {
		fmt.Fprintf(&table, "\n%-32s", r.name)
		for _, col := range cols {
			na, refusal := col.try(r)
			cell := "refused"
			switch {
			case na != "":
				cell = "n/a"
				t.Logf("%s × %s: n/a: %s", r.name, col.name, na)
			case refusal == nil || strings.HasPrefix(refusal.Error(), "answered") || strings.HasPrefix(refusal.Error(), "served") || strings.HasPrefix(refusal.Error(), "joined"):
				cell = "ACCEPTED"
				t.Errorf("%s × %s: accepted: %v", r.name, col.name, refusal)
			default:
				t.Logf("%s × %s: refused: %v", r.name, col.name, refusal)
			}
			fmt.Fprintf(&table, " | %-24s", cell)
		}
	}
	t.Log(table.String())

	after := settledDigest(t, managers)
	if after != before {
		t.Errorf("the cluster's state changed: digest %s before the attempts, %s after", before, after)
	}
	var token string
	l.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) { token = s.Cluster.ManagerToken })
	if token == "HFTKN-1-attacker" {
		t.Error("the attacker's manager token is the cluster's")
	}
}

// errOrServed turns an API call's result into the cell's verdict: its
// error, or "served" when it succeeded.
func errOrServed(err error) error {
	if err == nil {
		return errors.New("served")
	}
	return err
}
