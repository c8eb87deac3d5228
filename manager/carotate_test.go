package manager

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/transport"
)

// clusterRoot returns the root (with its key) in a manager's state.
func clusterRoot(t *testing.T, m *testNode) *ca.Root {
	t.Helper()
	var certPEM, keyPEM []byte
	m.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) {
		certPEM, keyPEM = s.Cluster.RootCertPEM, s.Cluster.RootKeyPEM
	})
	r, err := ca.ParseRoot(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// issueFor issues, from root, a certificate for node id valid from
// notBefore+1m for validity, and returns its PEM and key PEM.
func issueFor(t *testing.T, root *ca.Root, id ca.Identity, at time.Time, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ca.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := ca.NewCSR(key)
	certPEM, err = root.Issue(csr, id, validity, at)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ = ca.MarshalKey(key)
	return certPEM, keyPEM
}

// nodeAPIWith calls the node API of addr (Self) presenting the given
// certificate, trusting roots; it returns the call's error.
func nodeAPIWith(t *testing.T, addr string, certPEM, keyPEM, rootsPEM []byte, at time.Time) error {
	t.Helper()
	creds, err := transport.LoadCredentialsAt(certPEM, keyPEM, rootsPEM, at)
	if err != nil {
		t.Fatalf("test credentials: %v", err)
	}
	hc := transport.NewAPIClient(transport.Config{Creds: transport.NewCredStore(creds)})
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = api.NewClient(hc, "https://"+addr).ClusterStatus(ctx)
	return err
}

func waitRotation(t *testing.T, c *api.Client, timeout time.Duration) *api.CARotation {
	t.Helper()
	var r *api.CARotation
	eventually(t, timeout, "the CA rotation to finish", func() bool {
		var err error
		r, err = c.CARotation(context.Background())
		return err == nil && r.State == api.CARotationDone
	})
	return r
}

func TestCARotationConverges(t *testing.T) {
	c := newCluster(t, 3, 2)
	m0 := c.managers[0]
	old := clusterRoot(t, m0)
	oldInfo, err := m0.client.CA(ctxT(t))
	if err != nil || oldInfo.Digest != old.Digest() || oldInfo.RootPEM != string(old.CertPEM()) {
		t.Fatalf("CA() = %+v, %v; want the root %s", oldInfo, err, old.Digest())
	}
	finishedBefore := testutil.ToFloat64(caRotations)
	start, err := c.managers[1].client.RotateCA(ctxT(t), api.CARotateRequest{})
	if err != nil {
		t.Fatalf("RotateCA: %v", err)
	}
	if start.OldDigest != old.Digest() || start.NewDigest == old.Digest() || start.Nodes != 5 {
		t.Fatalf("rotation %+v; want from %s, 5 nodes", start, old.Digest())
	}
	done := waitRotation(t, c.managers[2].client, 30*time.Second)
	if done.ID != start.ID || done.Converted != 5 || len(done.Waiting) != 0 {
		t.Fatalf("finished rotation %+v; want %s with all 5 converted", done, start.ID)
	}
	if got := testutil.ToFloat64(caRotations) - finishedBefore; got != 1 {
		t.Errorf("holdfast_ca_rotations_total went up by %v; want 1", got)
	}
	newRoot := clusterRoot(t, m0)
	if newRoot.Digest() != start.NewDigest {
		t.Fatalf("root %s after the rotation; want %s", newRoot.Digest(), start.NewDigest)
	}
	all := append(append([]*testNode{}, c.managers...), c.workers...)
	onlyNew := x509.NewCertPool()
	onlyNew.AppendCertsFromPEM(newRoot.CertPEM())
	for _, tn := range all {
		// On disk and in memory: the file is written before the roots the
		// node's TLS uses are replaced.
		eventually(t, 10*time.Second, tn.name+" trusting only the new root", func() bool {
			b, err := os.ReadFile(filepath.Join(tn.dir, "certs", "root.pem"))
			return err == nil && string(b) == string(newRoot.CertPEM()) && tn.node.current().creds.Load().Roots.Equal(onlyNew)
		})
		leaf := tn.node.current().creds.Load().Cert.Leaf
		if !ca.IssuedBy(leaf, newRoot) {
			t.Errorf("%s holds a certificate from %s; want the new root", tn.name, leaf.Issuer)
		}
	}

	// The old root is refused: a certificate it issued for a member, which
	// trusts both roots itself so that only the server can refuse it.
	w0 := c.workers[0].node.current().info.NodeID
	certPEM, keyPEM := issueFor(t, old, ca.Identity{NodeID: w0, Role: ca.RoleManager, ClusterID: old.ClusterID()}, time.Now(), time.Hour)
	both := append(old.CertPEM(), newRoot.CertPEM()...)
	for _, m := range c.managers {
		if err := nodeAPIWith(t, m.status().Addr, certPEM, keyPEM, both, time.Now()); err == nil {
			t.Errorf("%s accepted a certificate from the old root", m.name)
		}
	}
	// And the new root's is accepted, the same way.
	certPEM, keyPEM = issueFor(t, newRoot, ca.Identity{NodeID: w0, Role: ca.RoleManager, ClusterID: old.ClusterID()}, time.Now(), time.Hour)
	if err := nodeAPIWith(t, m0.status().Addr, certPEM, keyPEM, both, time.Now()); err != nil {
		t.Errorf("a certificate from the new root was refused: %v", err)
	}

	// Old join tokens are refused; the new ones pin the new root.
	late := newTestNode(t, "late")
	_, err = late.client.Join(ctxT(t), api.JoinRequest{Token: c.init.WorkerToken, Addr: c.init.Addr})
	if err == nil || apiStatus(err) == http.StatusOK {
		t.Fatalf("join with the old worker token: %v; want refused", err)
	}
	tok, err := m0.client.JoinToken(ctxT(t), "worker")
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := ca.ParseToken(tok.Token)
	if parsed.CADigest != newRoot.Digest() || tok.Token == c.init.WorkerToken {
		t.Fatalf("worker token pins %s; want the new root %s", parsed.CADigest, newRoot.Digest())
	}
	mt, _ := m0.client.JoinToken(ctxT(t), "manager")
	if mt.Token == c.init.ManagerToken {
		t.Error("the manager token did not change")
	}
	if _, err := late.client.Join(ctxT(t), api.JoinRequest{Token: tok.Token, Addr: c.init.Addr}); err != nil {
		t.Fatalf("join with the new worker token: %v", err)
	}
}

// TestCARotationWaitsForDownNode: a stopped manager holds the rotation
// up and is named in its progress; the rotation survives a leader change
// meanwhile, and finishes once the manager is back.
func TestCARotationWaitsForDownNode(t *testing.T) {
	c := newCluster(t, 5, 0)
	down := c.managers[4]
	downID := down.node.current().info.NodeID
	down.stop()
	l := c.leader()
	start, err := l.client.RotateCA(ctxT(t), api.CARotateRequest{})
	if err != nil {
		t.Fatalf("RotateCA: %v", err)
	}
	waitingForDown := func(cl *api.Client) func() bool {
		return func() bool {
			r, err := cl.CARotation(context.Background())
			return err == nil && r.ID == start.ID && r.State == api.CARotationRotating && r.Converted == 4 &&
				len(r.Waiting) == 1 && r.Waiting[0].ID == downID && r.Waiting[0].Status == api.NodeDown && r.Waiting[0].Addr != ""
		}
	}
	eventually(t, 20*time.Second, "the rotation waiting for the stopped manager alone", waitingForDown(l.client))
	opensslVerifyChain(t, c.managers[1])

	// A node API connection opened now with an old-root certificate of a
	// member works, and must not once the old root is dropped.
	oldRoot := clusterRoot(t, l)
	m1ID := c.managers[1].node.current().info.NodeID
	oldPEM, oldKey := issueFor(t, oldRoot, ca.Identity{NodeID: m1ID, Role: ca.RoleWorker, ClusterID: oldRoot.ClusterID()}, time.Now(), time.Hour)
	rootsPEM := append(oldRoot.CertPEM(), clusterRotation(t, l).New.CertPEM()...)
	held := newHeldClient(t, oldPEM, oldKey, rootsPEM)
	heldAddr := c.managers[1].status().Addr
	if reused, err := held.status(heldAddr); err != nil || reused {
		t.Fatalf("old-root certificate during the rotation: %v (reused %v); want accepted on a new connection", err, reused)
	}
	oldCreds, err := transport.LoadCredentials(oldPEM, oldKey, rootsPEM)
	if err != nil {
		t.Fatal(err)
	}
	heldRaw := holdAPIConn(t, oldCreds, heldAddr)

	// The leader goes away; the rotation's stage is replicated state.
	l.halt()
	l2 := c.leader()
	eventually(t, 20*time.Second, "the new leader reporting the same rotation", waitingForDown(l2.client))

	// Re-running follows the rotation in progress; another root conflicts.
	again, err := l2.client.RotateCA(ctxT(t), api.CARotateRequest{})
	if err != nil || again.ID != start.ID {
		t.Fatalf("second RotateCA = %+v, %v; want to follow %s", again, err, start.ID)
	}
	other, err := ca.NewRotationRoot(clusterRoot(t, l2).ClusterID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = l2.client.RotateCA(ctxT(t), api.CARotateRequest{CACertPEM: string(other.CertPEM()), CAKeyPEM: string(other.KeyPEM())})
	if apiStatus(err) != http.StatusConflict {
		t.Fatalf("RotateCA to another root during a rotation: %v; want 409", err)
	}

	down.start()
	done := waitRotation(t, l2.client, 30*time.Second)
	if done.ID != start.ID {
		t.Fatalf("finished %s; want %s", done.ID, start.ID)
	}
	next := clusterRoot(t, l2)
	eventually(t, 10*time.Second, "m1 trusting the new root alone", func() bool {
		creds := c.managers[1].node.current().creds.Load()
		return len(creds.Cert.Certificate) == 2 // leaf + new root: the credentials after the rotation
	})
	if err := heldRaw.closedWithin(time.Second); err != nil {
		t.Fatalf("old-root certificate's connection opened before the rotation ended: %v; want closed within 1s of it", err)
	}
	if _, err := held.status(heldAddr); err == nil {
		t.Fatal("old-root certificate served after the rotation")
	}
	for _, tn := range []*testNode{down, l} {
		if tn == l {
			l.start() // the old leader, stopped mid-rotation, comes back after it
		}
		eventually(t, 20*time.Second, tn.name+" on the new root alone", func() bool {
			inc := tn.node.current()
			if inc == nil || !ca.IssuedBy(inc.creds.Load().Cert.Leaf, next) {
				return false
			}
			b, err := os.ReadFile(filepath.Join(tn.dir, "certs", "root.pem"))
			return err == nil && string(b) == string(next.CertPEM())
		})
	}
}

// TestCARotationImport: a root that cannot replace the current one is
// refused with 400 and starts nothing; one that can is rotated to.
func TestCARotationImport(t *testing.T) {
	c := newCluster(t, 1, 0)
	m0 := c.managers[0]
	cur := clusterRoot(t, m0)
	foreign, _ := ca.NewRotationRoot(ca.NewID(), time.Now())
	tests := []struct {
		name string
		req  api.CARotateRequest
	}{
		{"current root", api.CARotateRequest{CACertPEM: string(cur.CertPEM()), CAKeyPEM: string(cur.KeyPEM())}},
		{"another cluster's root", api.CARotateRequest{CACertPEM: string(foreign.CertPEM()), CAKeyPEM: string(foreign.KeyPEM())}},
		{"cert without key", api.CARotateRequest{CACertPEM: string(foreign.CertPEM())}},
		{"key of another cert", api.CARotateRequest{CACertPEM: string(foreign.CertPEM()), CAKeyPEM: string(cur.KeyPEM())}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m0.client.RotateCA(ctxT(t), tc.req)
			if apiStatus(err) != http.StatusBadRequest {
				t.Fatalf("RotateCA: %v; want 400", err)
			}
		})
	}
	if r, err := m0.client.CARotation(ctxT(t)); err != nil || r.State != api.CARotationNone {
		t.Fatalf("CARotation = %+v, %v; want none", r, err)
	}
	// An imported root of this cluster is rotated to.
	imported, err := ca.NewRotationRoot(cur.ClusterID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := m0.client.RotateCA(ctxT(t), api.CARotateRequest{CACertPEM: string(imported.CertPEM()), CAKeyPEM: string(imported.KeyPEM())})
	if err != nil || r.NewDigest != imported.Digest() {
		t.Fatalf("RotateCA(imported) = %+v, %v; want to %s", r, err, imported.Digest())
	}
	waitRotation(t, m0.client, 20*time.Second)
	if got, _ := m0.client.CA(ctxT(t)); got.Digest != imported.Digest() {
		t.Fatalf("root %s after the rotation; want the imported %s", got.Digest, imported.Digest())
	}
}

// TestExpiredAndForeignCertificatesRefused: the node API and raft refuse a
// certificate that expired, and one from another CA.
func TestExpiredAndForeignCertificatesRefused(t *testing.T) {
	c := newCluster(t, 1, 0)
	m0 := c.managers[0]
	root := clusterRoot(t, m0)
	id := ca.Identity{NodeID: m0.node.current().info.NodeID, Role: ca.RoleManager, ClusterID: root.ClusterID()}
	addr := m0.status().Addr

	// Valid from 55 to 25 minutes ago: within the root's life (it is an hour
	// old), and expired now.
	expiredPEM, expiredKey := issueFor(t, root, id, time.Now().Add(-55*time.Minute), 30*time.Minute)
	if err := nodeAPIWith(t, addr, expiredPEM, expiredKey, root.CertPEM(), time.Now().Add(-40*time.Minute)); err == nil {
		t.Error("node API accepted an expired certificate")
	}
	foreign, _ := ca.NewRoot(root.ClusterID(), time.Now()) // same cluster ID, another key
	fPEM, fKey := issueFor(t, foreign, id, time.Now(), time.Hour)
	if err := nodeAPIWith(t, addr, fPEM, fKey, append(foreign.CertPEM(), root.CertPEM()...), time.Now()); err == nil {
		t.Error("node API accepted a certificate from another CA")
	}
	goodPEM, goodKey := issueFor(t, root, id, time.Now(), time.Hour)
	if err := nodeAPIWith(t, addr, goodPEM, goodKey, root.CertPEM(), time.Now()); err != nil {
		t.Fatalf("node API refused a good certificate (the test proves nothing): %v", err)
	}
	// Raft: a handshake on the raft protocol with each certificate.
	for _, tc := range []struct {
		name        string
		cert, key   []byte
		roots       []byte
		at          time.Time
		wantRefused bool
	}{
		{"expired", expiredPEM, expiredKey, root.CertPEM(), time.Now().Add(-40 * time.Minute), true},
		{"other CA", fPEM, fKey, append(foreign.CertPEM(), root.CertPEM()...), time.Now(), true},
		{"good", goodPEM, goodKey, root.CertPEM(), time.Now(), false},
	} {
		creds, err := transport.LoadCredentialsAt(tc.cert, tc.key, tc.roots, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		err = raftHandshake(addr, creds)
		if (err != nil) != tc.wantRefused {
			t.Errorf("raft handshake with %s certificate: %v; want refused=%v", tc.name, err, tc.wantRefused)
		}
	}
}

// raftHandshake dials the raft protocol presenting creds and reports
// whether the server refused the handshake. In TLS 1.3 the server checks
// the client's certificate after the client's handshake completes, so a
// refusal arrives as an alert on the first read; an accepted connection
// just waits for raft traffic (the read times out).
func raftHandshake(addr string, creds *transport.Credentials) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{transport.ProtoRaft},
		InsecureSkipVerify: true, // the test checks the server's verdict, not the server
		Certificates:       []tls.Certificate{creds.Cert},
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("raft sent data unasked")
	}
	return err
}

// expireCert replaces a node's certificate with one for the same key and
// identity that expired 25 minutes ago, and has the cluster record it as
// the node's latest, through by (a running manager), as if the cluster
// had issued it: only the latest certificate may be recovered.
func expireCert(t *testing.T, tn *testNode, root *ca.Root, id ca.Identity, by *testNode) {
	t.Helper()
	keyPEM, err := os.ReadFile(filepath.Join(tn.dir, "certs", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := ca.NewCSR(key)
	certPEM, err := root.Issue(csr, id, 30*time.Minute, time.Now().Add(-55*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	recordCert(t, by, id.NodeID, certPEM)
	if err := os.WriteFile(filepath.Join(tn.dir, "certs", "node.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
}

// recordCert has the cluster record certPEM as node id's latest
// certificate, through the running manager by.
func recordCert(t *testing.T, by *testNode, id string, certPEM []byte) {
	t.Helper()
	rec, err := ca.RecordOfPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := by.node.writes.apply(ctxT(t), certUpdate(id, rec)); err != nil {
		t.Fatalf("record the certificate: %v", err)
	}
}

func TestExpiredManagerComesBack(t *testing.T) {
	t.Run("through the other managers", func(t *testing.T) {
		c := newCluster(t, 3, 0)
		m2 := c.managers[2]
		root := clusterRoot(t, c.managers[0])
		id := ca.Identity{NodeID: m2.node.current().info.NodeID, Role: ca.RoleManager, ClusterID: root.ClusterID()}
		expireCert(t, m2, root, id, c.managers[0])
		m2.stop()
		m2.start()
		eventually(t, 20*time.Second, "m2 back with a valid certificate, in raft", func() bool {
			inc := m2.node.current()
			if inc == nil || inc.rn() == nil || !time.Now().Before(inc.creds.Load().Cert.Leaf.NotAfter) {
				return false
			}
			st := m2.status()
			return st.State == api.StateReady && st.Leader.NodeID != ""
		})
		// It serves linearizable reads: it is a working member again.
		if _, err := m2.client.Nodes(ctxT(t)); err != nil {
			t.Fatalf("m2 node ls: %v", err)
		}
	})
	t.Run("a worker, through a manager", func(t *testing.T) {
		c := newCluster(t, 1, 1)
		root := clusterRoot(t, c.managers[0])
		w0 := c.workers[0]
		id := ca.Identity{NodeID: w0.node.current().info.NodeID, Role: ca.RoleWorker, ClusterID: root.ClusterID()}
		expireCert(t, w0, root, id, c.managers[0])
		w0.stop()
		w0.start()
		leaf := w0.node.current().creds.Load().Cert.Leaf
		if !time.Now().Before(leaf.NotAfter) {
			t.Fatalf("worker started with a certificate that expired at %s", leaf.NotAfter)
		}
		if got, _ := ca.IdentityOf(leaf); got != id {
			t.Fatalf("renewed certificate for %+v; want %+v", got, id)
		}
	})
	t.Run("retrying until another manager is back", func(t *testing.T) {
		c := newCluster(t, 3, 0)
		root := clusterRoot(t, c.managers[0])
		m2 := c.managers[2]
		id := ca.Identity{NodeID: m2.node.current().info.NodeID, Role: ca.RoleManager, ClusterID: root.ClusterID()}
		expireCert(t, m2, root, id, c.managers[0])
		for _, m := range c.managers {
			m.stop()
		}
		m2.start() // nobody to ask: it waits, and refuses what would wipe its state
		if m2.node.current() != nil {
			t.Fatal("a manager with an expired certificate started without renewing it")
		}
		if _, err := m2.client.Init(ctxT(t), api.InitRequest{}); apiStatus(err) != http.StatusConflict {
			t.Fatalf("init on a manager waiting with an expired certificate: %v; want 409", err)
		}
		c.managers[0].start()
		c.managers[1].start()
		eventually(t, 30*time.Second, "m2 started with a renewed certificate", func() bool {
			inc := m2.node.current()
			return inc != nil && inc.rn() != nil && time.Now().Before(inc.creds.Load().Cert.Leaf.NotAfter)
		})
	})
	t.Run("lone manager by force-new-cluster", func(t *testing.T) {
		c := newCluster(t, 1, 0)
		m0 := c.managers[0]
		root := clusterRoot(t, m0)
		id := ca.Identity{NodeID: m0.node.current().info.NodeID, Role: ca.RoleManager, ClusterID: root.ClusterID()}
		expireCert(t, m0, root, id, m0)
		m0.stop()
		m0.start() // stays up, waiting for force-new-cluster
		if m0.node.current() != nil {
			t.Fatal("a manager with an expired certificate started without renewing it")
		}
		if _, err := m0.client.Init(ctxT(t), api.InitRequest{ForceNewCluster: true}); err != nil {
			t.Fatalf("init --force-new-cluster: %v", err)
		}
		leaf := m0.node.current().creds.Load().Cert.Leaf
		if !time.Now().Before(leaf.NotAfter) || !ca.IssuedBy(leaf, root) {
			t.Fatalf("certificate after force-new-cluster expires %s; want a fresh one from the cluster root", leaf.NotAfter)
		}
		if _, err := m0.client.Nodes(ctxT(t)); err != nil {
			t.Fatalf("node ls: %v", err)
		}
	})
}

// TestRecoverRefuses: the expired-certificate path renews only an expired
// certificate from a trusted root, of a member, for the caller's own key.
func TestRecoverRefuses(t *testing.T) {
	c := newCluster(t, 1, 1)
	m0 := c.managers[0]
	root := clusterRoot(t, m0)
	w0 := c.workers[0].node.current().info.NodeID
	id := ca.Identity{NodeID: w0, Role: ca.RoleWorker, ClusterID: root.ClusterID()}
	past := time.Now().Add(-55 * time.Minute)

	expired := func(r *ca.Root, id ca.Identity) (certPEM, csr []byte) {
		key, _ := ca.NewKey()
		csr, _ = ca.NewCSR(key)
		certPEM, err := r.Issue(csr, id, 30*time.Minute, past)
		if err != nil {
			t.Fatal(err)
		}
		return certPEM, csr
	}
	good, goodCSR := expired(root, id)
	older, olderCSR := expired(root, id) // an earlier certificate of the same node
	recordCert(t, m0, w0, good)
	otherKey, _ := ca.NewKey()
	otherCSR, _ := ca.NewCSR(otherKey)
	foreign, _ := ca.NewRoot(root.ClusterID(), past.Add(-time.Hour))
	foreignCert, foreignCSR := expired(foreign, id)
	validKey, _ := ca.NewKey()
	validCSR, _ := ca.NewCSR(validKey)
	valid, _ := root.Issue(validCSR, id, time.Hour, time.Now())
	stranger, strangerCSR := expired(root, ca.Identity{NodeID: ca.NewID(), Role: ca.RoleWorker, ClusterID: root.ClusterID()})

	tests := []struct {
		name string
		req  api.RecoverRequest
		want int
	}{
		{"another key's request", api.RecoverRequest{CertPEM: good, CSR: otherCSR}, http.StatusForbidden},
		{"another CA", api.RecoverRequest{CertPEM: foreignCert, CSR: foreignCSR}, http.StatusForbidden},
		{"not expired", api.RecoverRequest{CertPEM: valid, CSR: validCSR}, http.StatusBadRequest},
		{"not a member", api.RecoverRequest{CertPEM: stranger, CSR: strangerCSR}, http.StatusForbidden},
		{"not the latest certificate", api.RecoverRequest{CertPEM: older, CSR: olderCSR}, http.StatusForbidden},
		{"garbage", api.RecoverRequest{CertPEM: []byte("x"), CSR: goodCSR}, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m0.node.apis.join.Recover(ctxT(t), tc.req)
			if apiStatus(err) != tc.want {
				t.Fatalf("Recover: %v; want status %d", err, tc.want)
			}
		})
	}
	resp, err := m0.node.apis.join.Recover(ctxT(t), api.RecoverRequest{CertPEM: good, CSR: goodCSR})
	if err != nil {
		t.Fatalf("Recover of a member's expired certificate: %v", err)
	}
	certs, _ := ca.ParseCertPEM(resp.CertPEM)
	if got, _ := ca.IdentityOf(certs[0]); got != id || !time.Now().Before(certs[0].NotAfter) {
		t.Fatalf("renewed certificate for %+v until %s; want %+v, valid", got, certs[0].NotAfter, id)
	}
	// Removed: refused from then on.
	if err := m0.client.RemoveNode(ctxT(t), w0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m0.node.apis.join.Recover(ctxT(t), api.RecoverRequest{CertPEM: good, CSR: goodCSR}); apiStatus(err) != http.StatusForbidden {
		t.Fatalf("Recover of a removed node: %v; want 403", err)
	}
}

// opensslVerifyChain checks, with openssl, the chain a node presents during
// a rotation (its node.pem: leaf, cross-signed new root, old root, new
// root): the leaf verifies against the old root alone through the cross
// certificate, and openssl reads its subject as the node's identity.
func opensslVerifyChain(t *testing.T, tn *testNode) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Log("openssl is not installed: the standard-tool check of the rotation chain is skipped")
		return
	}
	b, err := os.ReadFile(filepath.Join(tn.dir, "certs", "node.pem"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.ParseCertPEM(b)
	if err != nil || len(chain) != 4 {
		t.Fatalf("%s presents %d certificates (%v); want leaf, cross, old root, new root", tn.name, len(chain), err)
	}
	dir := t.TempDir()
	files := make([]string, len(chain))
	for i, c := range chain {
		files[i] = filepath.Join(dir, fmt.Sprintf("%d.pem", i))
		if err := os.WriteFile(files[i], pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(openssl, "verify", "-CAfile", files[2], "-untrusted", files[1], files[0]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify of %s's new certificate against the old root through the cross certificate: %v\n%s", tn.name, err, out)
	}
	out, err = exec.Command(openssl, "verify", "-CAfile", files[2], files[0]).CombinedOutput()
	if err == nil {
		t.Fatalf("openssl verified the new certificate against the old root without the cross certificate: %s", out)
	}
	out, err = exec.Command(openssl, "x509", "-in", files[0], "-noout", "-subject", "-nameopt", "RFC2253").CombinedOutput()
	id := tn.node.current().info
	want := fmt.Sprintf("subject=CN=%s,OU=%s,O=%s", id.NodeID, ca.OUManager, id.ClusterID)
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Fatalf("openssl reads the subject %q (%v); want %q", out, err, want)
	}
}

// clusterRotation returns the rotation in progress in a manager's state.
func clusterRotation(t *testing.T, m *testNode) *ca.Rotation {
	t.Helper()
	p, err := m.node.current().rn().caPlan()
	if err != nil || p.rot == nil {
		t.Fatalf("no rotation in progress (%v)", err)
	}
	return p.rot
}

// heldClient is a node API client that keeps its connections, and tells
// whether a call reused one.
type heldClient struct {
	t  *testing.T
	hc *http.Client
}

func newHeldClient(t *testing.T, certPEM, keyPEM, rootsPEM []byte) *heldClient {
	t.Helper()
	creds, err := transport.LoadCredentials(certPEM, keyPEM, rootsPEM)
	if err != nil {
		t.Fatal(err)
	}
	hc := transport.NewAPIClient(transport.Config{Creds: transport.NewCredStore(creds)})
	t.Cleanup(hc.CloseIdleConnections)
	return &heldClient{t: t, hc: hc}
}

func (h *heldClient) status(addr string) (reused bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
	_, err = api.NewClient(h.hc, "https://"+addr).ClusterStatus(ctx)
	return reused, err
}

// TestRecoveryRole: the decision of what an expired certificate may be
// renewed into, alone.
func TestRecoveryRole(t *testing.T) {
	root, err := ca.NewRoot(ca.NewID(), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	nid := ca.NewID()
	cert := func(role ca.Role) (*x509.Certificate, ca.Identity) {
		id := ca.Identity{NodeID: nid, Role: role, ClusterID: root.ClusterID()}
		p, _ := issueFor(t, root, id, now.Add(-2*time.Hour), time.Hour)
		c, _ := ca.ParseCertPEM(p)
		return c[0], id
	}
	mgrCert, mgrID := cert(ca.RoleManager)
	wrkCert, wrkID := cert(ca.RoleWorker)
	record := func(c *x509.Certificate, role ca.Role) *fsm.Node {
		r := ca.RecordOf(c)
		return &fsm.Node{ID: nid, Role: role, CertExpiresAt: r.NotAfter, CertSerial: r.Serial, CertKeySHA256: r.KeySHA256}
	}
	legacy := func(c *x509.Certificate, role ca.Role) *fsm.Node {
		return &fsm.Node{ID: nid, Role: role, CertExpiresAt: c.NotAfter}
	}
	tests := []struct {
		name   string
		rec    *fsm.Node
		leaf   *x509.Certificate
		id     ca.Identity
		window time.Duration
		want   ca.Role // role, or "" for refused
	}{
		{"latest manager certificate", record(mgrCert, ca.RoleManager), mgrCert, mgrID, 24 * time.Hour, ca.RoleManager},
		{"latest worker certificate", record(wrkCert, ca.RoleWorker), wrkCert, wrkID, 24 * time.Hour, ca.RoleWorker},
		{"not the latest", record(mgrCert, ca.RoleManager), wrkCert, wrkID, 24 * time.Hour, ""},
		{"expired too long ago", record(mgrCert, ca.RoleManager), mgrCert, mgrID, 30 * time.Minute, ""},
		{"never above the certificate's role", record(wrkCert, ca.RoleManager), wrkCert, wrkID, 24 * time.Hour, ca.RoleWorker},
		{"demoted since", record(mgrCert, ca.RoleWorker), mgrCert, mgrID, 24 * time.Hour, ca.RoleWorker},
		{"legacy record, same expiry", legacy(mgrCert, ca.RoleManager), mgrCert, mgrID, 24 * time.Hour, ca.RoleManager},
		{"legacy record, other expiry", &fsm.Node{ID: nid, Role: ca.RoleManager, CertExpiresAt: mgrCert.NotAfter.Add(time.Hour)}, mgrCert, mgrID, 24 * time.Hour, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recoveryRole(tc.rec, tc.leaf, tc.id, tc.window, now)
			if got != tc.want || (tc.want == "") != (err != nil) {
				t.Fatalf("recoveryRole = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestRecoverRefusesReplacedKey: a worker's key, kept by an attacker after
// the worker was promoted (and so got a new key and a manager
// certificate), recovers nothing — before, it came back as a manager.
func TestRecoverRefusesReplacedKey(t *testing.T) {
	c := newCluster(t, 1, 1)
	m0, w0 := c.managers[0], c.workers[0]
	root := clusterRoot(t, m0)
	wid := w0.node.current().info.NodeID
	oldKeyPEM, err := os.ReadFile(filepath.Join(w0.dir, "certs", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := ca.ParseKey(oldKeyPEM)
	if err := m0.client.Promote(ctxT(t), wid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "w0 to run as a manager", func() bool {
		inc := w0.node.current()
		return inc != nil && inc.rn() != nil && inc.creds.Load().ID.Role == ca.RoleManager
	})
	// The attacker's copy of the worker certificate has since expired.
	csr, _ := ca.NewCSR(oldKey)
	stale, err := root.Issue(csr, ca.Identity{NodeID: wid, Role: ca.RoleWorker, ClusterID: root.ClusterID()}, 30*time.Minute, time.Now().Add(-55*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m0.node.apis.join.Recover(ctxT(t), api.RecoverRequest{CertPEM: stale, CSR: csr})
	if err == nil {
		t.Fatalf("the replaced worker key recovered a %s certificate", resp.Role)
	}
	if apiStatus(err) != http.StatusForbidden || !strings.Contains(err.Error(), "not the latest") {
		t.Fatalf("Recover with a replaced key: %v; want 403, not the latest certificate", err)
	}
}
