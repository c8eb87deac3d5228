package manager

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/transport"
)

// nodeCount reads how many nodes the cluster has, through m.
func nodeCount(t *testing.T, m *testNode) int {
	t.Helper()
	nodes, err := m.client.Nodes(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return len(nodes)
}

func TestJoinRefusesBadTokens(t *testing.T) {
	c := newCluster(t, 1, 0)
	m := c.managers[0]
	good, err := ca.ParseToken(c.init.WorkerToken)
	if err != nil {
		t.Fatal(err)
	}
	// A token with the right CA digest but a secret of our own.
	forged := good
	other, _ := ca.ParseToken(c.init.ManagerToken)
	forged.Secret = other.Secret[:len(other.Secret)-4] + "aaaa"
	// A token of another cluster: its digest pins another CA.
	otherRoot, err := ca.NewRoot(ca.NewID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := ca.NewToken(otherRoot)
	// A token that was valid before a rotation.
	if _, err := m.client.RotateJoinToken(ctxT(t), "worker"); err != nil {
		t.Fatal(err)
	}

	before := nodeCount(t, m)
	tests := []struct {
		name   string
		token  string
		status int
		want   string
	}{
		{"forged", forged.String(), http.StatusForbidden, "invalid join token"},
		{"rotated", c.init.WorkerToken, http.StatusForbidden, "invalid join token"},
		{"malformed", "HFTKN-1-nothex-secret", http.StatusBadRequest, "invalid join token"},
		{"empty", "", http.StatusBadRequest, "invalid join token"},
		{"other cluster's CA", foreign.String(), http.StatusBadRequest, "does not have the CA"},
	}
	j := newTestNode(t, "joiner")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := j.client.Join(ctxT(t), api.JoinRequest{Token: tt.token, Addr: c.init.Addr})
			if apiStatus(err) != tt.status || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v (status %d); want %d containing %q", err, apiStatus(err), tt.status, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if st := j.status(); st.State != api.StateUninitialized {
				t.Errorf("joiner state %q after a refused join; want uninitialized", st.State)
			}
		})
	}
	if after := nodeCount(t, m); after != before {
		t.Errorf("refused joins changed the cluster: %d nodes, had %d", after, before)
	}
	// The joiner still joins with a good token afterwards.
	tok, err := m.client.JoinToken(ctxT(t), "worker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.client.Join(ctxT(t), api.JoinRequest{Token: tok.Token, Addr: c.init.Addr}); err != nil {
		t.Fatalf("join with the current token: %v", err)
	}
}

func TestInitAndDemoteRefusals(t *testing.T) {
	c := newCluster(t, 1, 0)
	m := c.managers[0]
	if _, err := m.client.Init(ctxT(t), api.InitRequest{}); apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "already part of cluster") {
		t.Errorf("init on an initialized node: got %v; want 409", err)
	}
	if err := m.client.Demote(ctxT(t), "self"); apiStatus(err) != http.StatusConflict {
		t.Errorf("demote the last manager: got %v; want 409", err)
	}
	fresh := newTestNode(t, "fresh")
	for _, req := range []api.InitRequest{{CertExpiry: "30m"}, {KeyRotation: "1s"}, {CertExpiry: "soon"}, {CACertPEM: "x"}} {
		if _, err := fresh.client.Init(ctxT(t), req); apiStatus(err) != http.StatusBadRequest {
			t.Errorf("init %+v: got %v; want 400", req, err)
		}
	}
	if st := fresh.status(); st.State != api.StateUninitialized {
		t.Errorf("refused init left state %q", st.State)
	}
	if err := m.client.Promote(ctxT(t), "nosuchnode"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("promote unknown: got %v; want 404", err)
	}
}

// An unknown command never reaches the log: it would stop every manager
// (needs-upgrade), so the leader refuses it with a clear 400, whether it
// came from its own API or from a follower, and the cluster goes on.
func TestUnknownCommandIsRefusedBeforeTheLog(t *testing.T) {
	c := newCluster(t, 3, 0)
	l := c.leader()
	rn := l.node.current().rn()
	bad := []byte{1, 0x7f, 0x7f, 1, '{', '}'}
	before := rn.r.LastIndex()
	if err := l.node.writes.apply(ctxT(t), rawCommand(bad)); apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "unknown command type") {
		t.Errorf("unknown command on the leader: got %v; want 400 unknown command type", err)
	}
	err := c.followers(l)[0].node.writes.apply(ctxT(t), rawCommand(bad))
	if err == nil || !strings.Contains(err.Error(), "unknown command type") {
		t.Errorf("forwarded unknown command: got %v; want unknown command type", err)
	}
	for i := before + 1; i <= rn.r.LastIndex(); i++ {
		var e raft.Log
		if rn.logs.GetLog(i, &e) == nil && bytes.Equal(e.Data, bad) {
			t.Fatalf("the unknown command is in the log at %d", i)
		}
	}
	if _, err := l.client.RotateJoinToken(ctxT(t), "worker"); err != nil {
		t.Errorf("cluster stopped working after an unknown command: %v", err)
	}
	// Every manager is (or, one that just joined and is still catching
	// up, becomes) ready: none stopped at the command.
	for _, m := range c.managers {
		eventually(t, 10*time.Second, m.name+" ready", func() bool { return m.status().State == api.StateReady })
	}
}

// rawCommand smuggles undecodable bytes through fsm.Encode's path for the
// test: its JSON is ignored and its type is unknown.
type rawCommand []byte

func (rawCommand) Type() fsm.Type { return 0x7f7f }
func (rawCommand) Version() uint8 { return 1 }

// A worker's certificate can never speak raft, and nothing without a
// certificate can either.
func TestWorkerCertificateCannotSpeakRaft(t *testing.T) {
	c := newCluster(t, 1, 1)
	creds := c.workers[0].node.current().creds.Load()
	addr := c.managers[0].status().Addr
	for name, certs := range map[string][]tls.Certificate{"worker cert": {creds.Cert}, "no cert": nil} {
		t.Run(name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
				NextProtos:         []string{transport.ProtoRaft},
				Certificates:       certs,
				InsecureSkipVerify: true, // the test checks the server's refusal, not its identity
				MinVersion:         tls.VersionTLS13,
			})
			if err == nil {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Write([]byte{0}) // raft's first byte: an RPC type
				if err == nil {
					_, err = conn.Read(make([]byte, 1))
				}
			}
			if err == nil {
				t.Fatal("the manager accepted raft traffic")
			}
		})
	}
	_ = context.Background
}
