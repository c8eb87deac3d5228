package manager

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/backoff"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// Default cluster settings.
const (
	DefaultCertExpiry  = ca.DefaultCertExpiry
	DefaultKeyRotation = 12 * time.Hour
)

// errInitialized answers init or join on a node that is in a cluster.
func (n *Node) errInitialized(inc *incarnation) error {
	return api.Errorf(api.CodeAlreadyExists, "this node is already part of cluster %s; run 'holdfast leave' first", inc.info.ClusterID)
}

// Init creates a new cluster with this node as its first manager.
func (n *Node) Init(ctx context.Context, req api.InitRequest) (*api.InitResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return nil, errStopping
	}
	if req.ForceNewCluster {
		return n.recovery.forceNewCluster(ctx)
	}
	if inc := n.current(); inc != nil {
		return nil, n.errInitialized(inc)
	}
	if err := n.errExpired(); err != nil {
		return nil, err
	}
	switch {
	}
	settings := fsm.Settings{CertExpiry: DefaultCertExpiry, KeyRotation: DefaultKeyRotation}
	if err := parseDuration("cert expiry", req.CertExpiry, &settings.CertExpiry); err != nil {
		return nil, err
	}
	if err := parseDuration("key rotation", req.KeyRotation, &settings.KeyRotation); err != nil {
		return nil, err
	}
	if err := settings.Validate(); err != nil {
		return nil, api.Wrap(api.CodeInvalidArgument, err)
	}
	now := n.cfg.now().UTC()
	clusterID, nodeID := ca.NewID(), ca.NewID()
	var root *ca.Root
	var err error
	switch {
	case req.CACertPEM != "" || req.CAKeyPEM != "":
		if req.CACertPEM == "" || req.CAKeyPEM == "" {
			return nil, api.Errorf(api.CodeInvalidArgument, "--ca-cert and --ca-key go together")
		}
		root, err = ca.ParseRoot([]byte(req.CACertPEM), []byte(req.CAKeyPEM))
		if err != nil {
			return nil, api.Errorf(api.CodeInvalidArgument, "imported CA: %v", err)
		}
		// Node certificates name their cluster in O and must chain to a
		// root of the same cluster, so an imported root brings the
		// cluster ID: its subject's O.
		if clusterID = root.ClusterID(); !ca.ValidID(clusterID) {
			return nil, api.Errorf(api.CodeInvalidArgument, "imported CA: its subject's O is %q; it must be the new cluster's ID, 26 characters of base32 (a-z, 2-7), for example O=%s", clusterID, ca.NewID())
		}
	default:
		root, err = ca.NewRoot(clusterID, now)
		if err != nil {
			return nil, err
		}
	}
	workerTok, err := ca.NewToken(root)
	if err != nil {
		return nil, err
	}
	managerTok, err := ca.NewToken(root)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, rec, err := issueSelf(root, ca.Identity{NodeID: nodeID, Role: ca.RoleManager, ClusterID: clusterID}, settings.CertExpiry, now)
	if err != nil {
		return nil, err
	}
	// Leftovers of an earlier, failed start would confuse raft.
	if err := n.wipeState(); err != nil {
		return nil, err
	}
	var unlockKey autolock.Key
	if req.Autolock {
		unlockKey = autolock.NewKey()
		settings.Autolock = true
		n.keyFiles.SetKEK(unlockKey.KEK())
	}
	if err := n.keyFiles.SaveCerts(nodeID, &keyfiles.Certs{RootPEM: root.CertPEM(), CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		return nil, err
	}
	info := &nodeInfo{NodeID: nodeID, ClusterID: clusterID, Role: roleManager}
	if err := n.start(ctx, info, raftBootstrap); err != nil {
		_ = n.wipeState()
		return nil, err
	}
	cmd := &fsm.ClusterInit{
		Cluster: fsm.Cluster{
			ID: clusterID, CreatedAt: now, Settings: settings,
			RootCertPEM: root.CertPEM(), RootKeyPEM: root.KeyPEM(),
			WorkerToken: workerTok.String(), ManagerToken: managerTok.String(),
		},
		First: fsm.Node{ID: nodeID, Role: roleManager, Addr: info.AdvertiseAddr, CreatedAt: now, CertExpiresAt: rec.NotAfter, CertSerial: rec.Serial, CertKeySHA256: rec.KeySHA256},
	}
	if req.Autolock {
		cmd.Cluster.UnlockKey = unlockKey.String()
	}
	if err := n.writes.apply(ctx, cmd); err != nil {
		n.stop(false)
		_ = n.wipeState()
		return nil, fmt.Errorf("initialize cluster state: %w", err)
	}
	// node.json last: a node without it starts uninitialized, and init
	// wipes whatever a failed attempt left.
	if err := n.dir.saveNodeInfo(info); err != nil {
		n.stop(false)
		_ = n.wipeState()
		return nil, err
	}
	n.logger.Info("cluster initialized", "cluster_id", clusterID, "node_id", nodeID)
	resp := &api.InitResponse{
		ClusterID: clusterID, NodeID: nodeID, Addr: info.AdvertiseAddr,
		WorkerToken: workerTok.String(), ManagerToken: managerTok.String(),
	}
	if req.Autolock {
		resp.UnlockKey = unlockKey.String()
	}
	return resp, nil
}

func parseDuration(what, s string, dst *time.Duration) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return api.Errorf(api.CodeInvalidArgument, "%s: %q is not a duration (use Go syntax, e.g. 90m or 2160h)", what, s)
	}
	*dst = d
	return nil
}

// issueSelf makes a key and has root certify it as id; it returns both as
// PEM, and when the certificate expires.
func issueSelf(root *ca.Root, id ca.Identity, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, rec ca.Record, err error) {
	return root.IssueNewKey(id, validity, now)
}

// certUpdate records a certificate just issued to node id.
func certUpdate(id string, rec ca.Record) *fsm.NodeUpdate {
	return &fsm.NodeUpdate{ID: id, CertExpiresAt: rec.NotAfter, CertSerial: rec.Serial, CertKeySHA256: rec.KeySHA256}
}

func certExpiry(certPEM []byte) (time.Time, error) {
	certs, err := ca.ParseCertPEM(certPEM)
	if err != nil {
		return time.Time{}, err
	}
	return certs[0].NotAfter.UTC(), nil
}

// wipeState removes the node's cluster state (not the control socket) and
// the secrets delivered to it.
func (n *Node) wipeState() error {
	if _, _, err := n.cfg.secretsDir().Sync(nil); err != nil {
		n.logger.Warn("cannot remove delivered secrets", "dir", n.cfg.SecretsDir, "err", err)
	}
	if err := n.keyFiles.Wipe(); err != nil {
		return err
	}
	for _, p := range []string{n.dir.nodeInfoPath(), n.dir.raftDir()} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// removeRaftState deletes the raft log and the key that sealed it.
func (n *Node) removeRaftState() error {
	if err := os.RemoveAll(n.dir.raftDir()); err != nil {
		return fmt.Errorf("remove %s: %w", n.dir.raftDir(), err)
	}
	return n.keyFiles.RemoveDEKs()
}

// Join joins the cluster at req.Addr with req.Token.
func (n *Node) Join(ctx context.Context, req api.JoinRequest) (*api.JoinResponse, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return nil, errStopping
	}
	if inc := n.current(); inc != nil {
		return nil, n.errInitialized(inc)
	}
	if err := n.errExpired(); err != nil {
		return nil, err
	}
	tok, err := ca.ParseToken(req.Token)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "invalid join token: %v", err)
	}
	if _, _, err := net.SplitHostPort(req.Addr); err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "manager address %q: %v (want HOST:PORT)", req.Addr, err)
	}
	listen, advertise, err := n.joinAddrs()
	if err != nil {
		return nil, err
	}
	key, err := ca.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return nil, err
	}
	jc := transport.NewJoinClient(tok.CADigest, 10*time.Second, n.cfg.now)
	defer jc.CloseIdleConnections()
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	grant, err := api.NewClient(jc, "https://"+req.Addr).Grant(gctx, api.JoinGrantRequest{Token: req.Token, CSR: csr, Addr: advertise, Level: n.cfg.level()})
	cancel()
	if err != nil {
		var ae *api.Error
		switch {
		case errors.As(err, &ae):
			return nil, ae
		case errors.Is(err, transport.ErrCAMismatch):
			return nil, api.Errorf(api.CodeInvalidArgument, "the cluster at %s does not have the CA this token names; nothing was sent (%v)", req.Addr, err)
		default:
			return nil, api.Errorf(api.CodeBadGateway, "cannot join through %s: %v", req.Addr, err)
		}
	}
	if err := checkGrant(grant, key, tok.CADigest, n.cfg.now()); err != nil {
		return nil, api.Errorf(api.CodeBadGateway, "the manager at %s sent an unusable certificate: %v", req.Addr, err)
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		return nil, err
	}
	if err := n.wipeState(); err != nil {
		return nil, err
	}
	if err := n.keyFiles.SaveCerts(grant.NodeID, &keyfiles.Certs{RootPEM: grant.RootPEM, CertPEM: grant.CertPEM, KeyPEM: keyPEM}); err != nil {
		return nil, err
	}
	info := &nodeInfo{NodeID: grant.NodeID, ClusterID: grant.ClusterID, Role: grant.Role, ListenAddr: listen, AdvertiseAddr: advertise, Managers: grant.Managers}
	if err := n.dir.saveNodeInfo(info); err != nil {
		return nil, err
	}
	if err := n.start(ctx, info, raftResume); err != nil {
		_ = n.wipeState()
		return nil, err
	}
	if info.Role == roleManager {
		switch err := n.becomeVoter(ctx, n.current()); {
		case errors.Is(err, errNotCaughtUp):
			// A voter already: stopping and wiping now would leave the
			// cluster a voter that never answers. Keep catching up.
			n.logger.Warn("joined raft, still catching up with the cluster", "node_id", grant.NodeID)
		case err != nil:
			n.stop(false)
			_ = n.wipeState()
			return nil, err
		}
	}
	n.logger.Info("joined cluster", "cluster_id", grant.ClusterID, "node_id", grant.NodeID, "role", grant.Role)
	return &api.JoinResponse{ClusterID: grant.ClusterID, NodeID: grant.NodeID, Role: grant.Role}, nil
}

// joinAddrs settles the addresses a joining node will use. With port 0 it
// reserves a free port first, since the advertise address goes into the
// join request before the node listens (it has no certificate yet).
func (n *Node) joinAddrs() (listen, advertise string, err error) {
	listen = n.cfg.ListenAddr
	if hasPortZero(listen) {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return "", "", api.Errorf(api.CodeInternal, "reserve a port: %v", err)
		}
		host, _, _ := net.SplitHostPort(listen)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		listen = net.JoinHostPort(host, port)
	}
	addr, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return "", "", api.Errorf(api.CodeInvalidArgument, "listen address %s: %v", listen, err)
	}
	advertise, err = advertiseFor(n.cfg.AdvertiseAddr, addr)
	return listen, advertise, err
}

// checkGrant verifies that a grant's certificate is for our key, chains to
// the root the token pinned, and names a role.
func checkGrant(g *api.JoinGrant, key *ecdsa.PrivateKey, caDigest string, now time.Time) error {
	roots, err := ca.ParseCertPEM(g.RootPEM)
	if err != nil {
		return err
	}
	var pool = x509.NewCertPool()
	found := false
	for _, r := range roots {
		pool.AddCert(r)
		found = found || ca.DigestOf(r.Raw) == caDigest
	}
	if !found {
		return errors.New("root does not match the token")
	}
	certs, err := ca.ParseCertPEM(g.CertPEM)
	if err != nil {
		return err
	}
	leaf := certs[0]
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		return errors.New("certificate is not for this node's key")
	}
	id, err := ca.Verify(leaf, certs[1:], pool, now)
	if err != nil {
		return err
	}
	if id.NodeID != g.NodeID || id.ClusterID != g.ClusterID || id.Role != g.Role {
		return fmt.Errorf("certificate names %+v, grant says %s/%s/%s", id, g.NodeID, g.Role, g.ClusterID)
	}
	return nil
}

// becomeVoter asks the leader, through any known manager, to add this
// manager to raft, and waits until it has caught up with the cluster.
func (n *Node) becomeVoter(ctx context.Context, inc *incarnation) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var lastErr error
	bo := backoff.New(50*time.Millisecond, 500*time.Millisecond)
	for {
		for _, m := range inc.info.Managers {
			if m.NodeID == inc.info.NodeID {
				continue
			}
			if lastErr = peerClient(inc, m.Addr).AddVoter(ctx, api.AddVoterRequest{Addr: inc.info.AdvertiseAddr}); lastErr == nil {
				break
			}
		}
		if lastErr == nil {
			break
		}
		select {
		case <-ctx.Done():
			return api.Errorf(api.CodeUnavailable, "could not join raft: %v", lastErr)
		case <-time.After(bo.Next()):
		}
	}
	// Caught up once this node's own record has reached its FSM. Raft has
	// added this node as a voter by now: if it is slow to catch up, it is
	// a member all the same (errNotCaughtUp), and it must keep running and
	// catching up rather than leave a voter that never answers.
	wait := n.cfg.catchUpWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	rn := inc.rn()
	for {
		ch := rn.fsm.Changed()
		var ok bool
		rn.fsm.Read(func(s *fsm.State, _ uint64) { _, ok = s.Nodes[inc.info.NodeID] })
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return errNotCaughtUp
		case <-ctx.Done():
			return errNotCaughtUp
		}
	}
}

// errNotCaughtUp is becomeVoter's answer when raft added this node but it
// had not caught up with the cluster when the wait ended.
var errNotCaughtUp = api.Errorf(api.CodeUnavailable, "joined raft but did not catch up with the cluster in time")
