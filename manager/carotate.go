package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// CA rotation, manager side. The state (fsm.CARotation) says which root
// issues; every node follows it with caSyncLoop: renew onto the issuing
// root, trust what the stage says, present the chain it says, and report
// the new certificate. The leader's caFinishLoop ends the rotation once
// every node has reported.

// caPlan is the cluster's CA as the state has it now.
type caPlan struct {
	root  *ca.Root
	rot   *ca.Rotation // nil unless a rotation is in progress
	rotID string
}

// issuer is the root that issues certificates now.
func (p *caPlan) issuer() *ca.Root {
	if p.rot != nil {
		return p.rot.New
	}
	return p.root
}

// chain is what a node presents: its certificate, then during a rotation
// the cross-signed new root and both roots.
func (p *caPlan) chain(leafPEM []byte) []byte {
	if p.rot != nil {
		return p.rot.ChainPEM(leafPEM)
	}
	return bytes.Clone(leafPEM)
}

// trustPEM is the roots nodes trust.
func (p *caPlan) trustPEM() []byte {
	if p.rot != nil {
		return p.rot.TrustPEM()
	}
	return p.root.CertPEM()
}

func (p *caPlan) view(converted bool) *api.CAView {
	return &api.CAView{TrustPEM: p.trustPEM(), IssuerDigest: p.issuer().Digest(), ChainPEM: p.chain(nil), RotationID: p.rotID, Converted: converted}
}

var planCache struct {
	mu    sync.Mutex
	roots map[string]*ca.Root // by certificate PEM
	rots  map[string]*ca.Rotation
}

func cachedRoot(certPEM, keyPEM []byte) (*ca.Root, error) {
	planCache.mu.Lock()
	defer planCache.mu.Unlock()
	if r, ok := planCache.roots[string(certPEM)]; ok {
		return r, nil
	}
	r, err := ca.ParseRoot(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if planCache.roots == nil || len(planCache.roots) > 16 {
		planCache.roots = map[string]*ca.Root{}
	}
	planCache.roots[string(certPEM)] = r
	return r, nil
}

// planOf reads the CA plan from s (s.Cluster set).
func planOf(s *fsm.State) (*caPlan, error) {
	root, err := cachedRoot(s.Cluster.RootCertPEM, s.Cluster.RootKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster root: %w", err)
	}
	p := &caPlan{root: root}
	r := s.CARotation
	if !r.InProgress() {
		return p, nil
	}
	key := r.ID + "/" + root.Digest()
	planCache.mu.Lock()
	rot := planCache.rots[key]
	planCache.mu.Unlock()
	if rot == nil {
		next, err := cachedRoot(r.NewCertPEM, r.NewKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("rotation's new root: %w", err)
		}
		if rot, err = ca.LoadRotation(root, next, r.CrossPEM); err != nil {
			return nil, err
		}
		planCache.mu.Lock()
		if planCache.rots == nil || len(planCache.rots) > 16 {
			planCache.rots = map[string]*ca.Rotation{}
		}
		planCache.rots[key] = rot
		planCache.mu.Unlock()
	}
	p.rot, p.rotID = rot, r.ID
	return p, nil
}

// caPlan reads the plan from this manager's state.
func (rn *raftNode) caPlan() (*caPlan, error) {
	var p *caPlan
	var err error = api.ErrUninitialized
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster != nil {
			p, err = planOf(s)
		}
	})
	return p, err
}

// selfCAView is the CA view for node id, from state s.
func selfCAView(s *fsm.State, id string) *api.CAView {
	if s.Cluster == nil {
		return nil
	}
	p, err := planOf(s)
	if err != nil {
		return nil
	}
	return p.view(s.CARotation.InProgress() && s.CARotation.Converted[id])
}

// CA answers `holdfast ca`: the root certificate.
func (a *caAPI) CA(ctx context.Context) (*api.CAInfo, error) {
	var out api.CAInfo
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		out = api.CAInfo{RootPEM: string(s.Cluster.RootCertPEM), Digest: s.Cluster.RootDigest()}
		return nil
	})
	return &out, err
}

// RotateCA starts a CA rotation, or, when one is in progress, answers its
// progress so that the caller follows it. A different imported root during
// a rotation is a conflict.
func (a *caAPI) RotateCA(ctx context.Context, req api.CARotateRequest) (*api.CARotation, error) {
	if (req.CACertPEM == "") != (req.CAKeyPEM == "") {
		return nil, api.Errorf(api.CodeInvalidArgument, "--ca-cert and --ca-key go together")
	}
	var imported *ca.Root
	if req.CACertPEM != "" {
		r, err := ca.ParseRoot([]byte(req.CACertPEM), []byte(req.CAKeyPEM))
		if err != nil {
			return nil, api.Errorf(api.CodeInvalidArgument, "imported CA: %v", err)
		}
		imported = r
	}
	var old *ca.Root
	var clusterID string
	var running *fsm.CARotation
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		clusterID = s.Cluster.ID
		if s.CARotation.InProgress() {
			c := *s.CARotation
			running = &c
			return nil
		}
		r, err := cachedRoot(s.Cluster.RootCertPEM, s.Cluster.RootKeyPEM)
		old = r
		return err
	})
	if err != nil {
		return nil, err
	}
	if running != nil {
		if imported != nil && imported.Digest() != running.NewDigest {
			return nil, api.Errorf(api.CodeConflict, "CA rotation %s to another root is in progress: wait for it to finish, or run 'holdfast ca --rotate' without --ca-cert to follow it", running.ID)
		}
		return a.CARotation(ctx)
	}
	now := time.Now().UTC()
	next := imported
	if next == nil {
		if next, err = ca.NewRotationRoot(clusterID, now); err != nil {
			return nil, err
		}
	}
	rot, err := ca.NewRotation(old, next, now)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	cmd := &fsm.CARotateStart{
		ID: ca.NewID(), OldDigest: old.Digest(), NewDigest: next.Digest(),
		NewCertPEM: next.CertPEM(), NewKeyPEM: next.KeyPEM(), CrossPEM: rot.CrossPEM(), StartedAt: now,
	}
	if err := a.writes.apply(ctx, cmd); err != nil {
		if errors.Is(err, fsm.ErrRotationInProgress) {
			return nil, api.Errorf(api.CodeConflict, "another CA rotation started meanwhile: run 'holdfast ca --rotate' again to follow it")
		}
		return nil, err
	}
	a.logger.Info("CA rotation started", "rotation", cmd.ID, "new_root", cmd.NewDigest)
	return a.CARotation(ctx)
}

// CARotation answers the progress of the current or last CA rotation,
// naming the nodes it waits for and whether they answer.
func (a *caAPI) CARotation(ctx context.Context) (*api.CARotation, error) {
	out := &api.CARotation{State: api.CARotationNone, Waiting: []api.CAWaitingFor{}}
	var waiting map[string]bool
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		r := s.CARotation
		if r == nil {
			return nil
		}
		out.ID, out.OldDigest, out.NewDigest, out.StartedAt, out.FinishedAt = r.ID, r.OldDigest, r.NewDigest, r.StartedAt, r.FinishedAt
		out.Nodes = len(s.Nodes)
		if !r.InProgress() {
			out.State, out.Converted = api.CARotationDone, len(s.Nodes)
			return nil
		}
		out.State = api.CARotationRotating
		waiting = map[string]bool{}
		for _, id := range s.RotationWaiting() {
			waiting[id] = true
		}
		out.Converted = out.Nodes - len(waiting)
		return nil
	})
	if err != nil || len(waiting) == 0 {
		return out, err
	}
	nodes, err := a.nodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, nd := range nodes {
		if waiting[nd.ID] {
			out.Waiting = append(out.Waiting, api.CAWaitingFor{ID: nd.ID, Role: nd.Role, Addr: nd.Addr, Status: nd.Status})
		}
	}
	return out, nil
}

// CAConverted records, for the rotation in progress, that the caller's
// connection presents a certificate from the new root.
func (a *nodeAPI) CAConverted(ctx context.Context, from api.Peer, leaf *x509.Certificate) error {
	_, rn, err := a.writes.managerRaft()
	if err != nil {
		return err
	}
	p, err := rn.caPlan()
	if err != nil {
		return err
	}
	if p.rot == nil {
		return nil // finished meanwhile, or never started: nothing to record
	}
	if leaf == nil || !ca.IssuedBy(leaf, p.rot.New) {
		return api.Errorf(api.CodeInvalidArgument, "this connection's certificate is not from the new root: renew first")
	}
	return a.recordConverted(ctx, p.rotID, from.NodeID)
}

func (n *Node) recordConverted(ctx context.Context, rotID, nodeID string) error {
	err := n.writes.apply(ctx, &fsm.CARotateNode{ID: rotID, NodeID: nodeID})
	if errors.Is(err, fsm.ErrNoRotation) {
		return nil
	}
	return err
}

// caFinishLoop, on the leader, ends the rotation in progress once every
// node holds a certificate from the new root: the new root replaces the
// old one and both join tokens change (they pin the root). Idempotent
// across leader changes: the finish names the rotation, and the FSM
// refuses a second one.
func (n *Node) caFinishLoop(ctx context.Context, rn *raftNode) {
	for {
		ch := rn.fsm.Changed()
		var rot *fsm.CARotation
		if rn.isLeader() {
			rn.fsm.Read(func(s *fsm.State, _ uint64) {
				if s.CARotation.InProgress() && len(s.RotationWaiting()) == 0 {
					c := *s.CARotation
					rot = &c
				}
			})
		}
		var retry <-chan time.Time
		if rot != nil {
			if err := n.finishRotation(ctx, rn, rot); err != nil && ctx.Err() == nil {
				n.logger.Warn("cannot finish the CA rotation yet; retrying", "rotation", rot.ID, "err", err)
				retry = time.After(time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-retry:
		}
	}
}

func (n *Node) finishRotation(ctx context.Context, rn *raftNode, rot *fsm.CARotation) error {
	next, err := cachedRoot(rot.NewCertPEM, rot.NewKeyPEM)
	if err != nil {
		return err
	}
	wt, err := ca.NewToken(next)
	if err != nil {
		return err
	}
	mt, err := ca.NewToken(next)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	err = n.writes.applyCmd(actx, rn, &fsm.CARotateFinish{ID: rot.ID, WorkerToken: wt.String(), ManagerToken: mt.String(), FinishedAt: time.Now().UTC()})
	if errors.Is(err, fsm.ErrNoRotation) {
		return nil
	}
	if err == nil {
		n.logger.Info("CA rotation finished: the old root is no longer trusted and the join tokens changed", "rotation", rot.ID, "root", rot.NewDigest)
		metricCARotated()
	}
	return err
}

// startCALoops starts the CA loops of an incarnation: following the CA on
// every node (fed from the state on a manager, from followCluster on a
// worker), and finishing rotations on the leader.
func (n *Node) startCALoops(ctx context.Context, inc *incarnation, rn *raftNode) {
	inc.loops.Add(1)
	go func() { defer inc.loops.Done(); n.caSyncLoop(ctx, inc, inc.caViews) }()
	if rn == nil {
		return
	}
	inc.loops.Add(2)
	go func() { defer inc.loops.Done(); n.managerCAFeed(ctx, inc, rn, inc.caViews) }()
	go func() { defer inc.loops.Done(); n.caFinishLoop(ctx, rn) }()
}

// managerCAFeed turns a manager's state changes into CA views for its
// caSyncLoop.
func (n *Node) managerCAFeed(ctx context.Context, inc *incarnation, rn *raftNode, views chan *api.CAView) {
	var remembered time.Time
	for {
		ch := rn.fsm.Changed()
		var v *api.CAView
		rn.fsm.Read(func(s *fsm.State, _ uint64) { v = selfCAView(s, inc.info.NodeID) })
		if v != nil {
			offerView(views, v)
		}
		if time.Since(remembered) > 5*time.Second { // it asks raft for its configuration
			n.rememberManagerPeers(inc)
			remembered = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// offerView puts v in views (capacity 1), replacing a view not taken yet.
func offerView(views chan *api.CAView, v *api.CAView) {
	for {
		select {
		case views <- v:
			return
		default:
		}
		select {
		case <-views:
		default:
		}
	}
}

func viewKey(v *api.CAView) [32]byte {
	h := sha256.New()
	for _, b := range [][]byte{v.TrustPEM, []byte(v.IssuerDigest), v.ChainPEM, []byte(v.RotationID)} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%v", v.Converted)
	return [32]byte(h.Sum(nil))
}

// caSyncLoop makes this node follow the CA views it is given, retrying
// with backoff until it has caught up with the latest one.
func (n *Node) caSyncLoop(ctx context.Context, inc *incarnation, views chan *api.CAView) {
	var cur *api.CAView
	var done [32]byte
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-views:
			cur = v
		case <-retry.C:
		}
		if cur == nil || viewKey(cur) == done {
			continue
		}
		if err := n.syncCA(ctx, inc, cur); err != nil {
			if ctx.Err() != nil {
				return
			}
			n.logger.Warn("cannot follow the cluster's CA yet; retrying", "err", err, "in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		done, backoff = viewKey(cur), 100*time.Millisecond
	}
}

// syncCA brings this node onto view v: a certificate from the issuing
// root (renewing if need be), the roots and chain v says, and, during a
// rotation, the new certificate reported.
func (n *Node) syncCA(ctx context.Context, inc *incarnation, v *api.CAView) error {
	trust, err := ca.ParseCertPEM(v.TrustPEM)
	if err != nil {
		return fmt.Errorf("cluster's roots: %w", err)
	}
	var issuer *x509.Certificate
	for _, c := range trust {
		if ca.DigestOf(c.Raw) == v.IssuerDigest {
			issuer = c
		}
	}
	if issuer == nil {
		return errors.New("the issuing root is not among the roots to trust")
	}
	if inc.creds.Load().Cert.Leaf.CheckSignatureFrom(issuer) != nil {
		n.logger.Info("renewing onto the cluster's new root", "root", v.IssuerDigest)
		if err := n.renewCert(ctx, inc); err != nil {
			return fmt.Errorf("renew onto the new root: %w", err)
		}
		inc.nodeHTTP.CloseIdleConnections() // later calls present the new certificate
		if inc.creds.Load().Cert.Leaf.CheckSignatureFrom(issuer) != nil {
			return errors.New("the renewed certificate is not from the new root yet")
		}
	}
	if err := n.refreshTrust(inc, v); err != nil {
		return err
	}
	if v.RotationID == "" || v.Converted {
		return nil
	}
	if inc.rn() != nil {
		return n.recordConverted(ctx, v.RotationID, inc.info.NodeID)
	}
	err = errors.New("no manager known")
	for _, m := range inc.managers() {
		rctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
		err = peerClient(inc, m.Addr).CAConverted(rctx)
		cancel()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("report the new certificate: %w", err)
}

// refreshTrust rewrites the node's roots and presented chain when v says
// otherwise than the files, keeping its certificate and key.
func (n *Node) refreshTrust(inc *incarnation, v *api.CAView) error {
	inc.certMu.Lock()
	defer inc.certMu.Unlock()
	files, err := n.keyFiles.LoadCerts(inc.info.NodeID)
	if err != nil {
		return err
	}
	leaf := inc.creds.Load().Cert.Leaf
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), v.ChainPEM...)
	if bytes.Equal(files.CertPEM, certPEM) && bytes.Equal(files.RootPEM, v.TrustPEM) {
		return nil
	}
	creds, err := transport.LoadCredentials(certPEM, files.KeyPEM, v.TrustPEM)
	if err != nil {
		return fmt.Errorf("new roots: %w", err)
	}
	if err := n.keyFiles.SaveCerts(inc.info.NodeID, &keyfiles.Certs{RootPEM: v.TrustPEM, CertPEM: certPEM, KeyPEM: files.KeyPEM}); err != nil {
		return err
	}
	inc.setCreds(creds)
	inc.nodeHTTP.CloseIdleConnections()
	n.logger.Info("trusted roots changed", "roots", len(bytes.Split(bytes.TrimSpace(v.TrustPEM), []byte("-----END CERTIFICATE-----")))-1, "rotation", v.RotationID)
	return nil
}

// peerTrustCache remembers which callers' certificates verify against one
// set of roots, so that each request does not verify signatures again.
type peerTrustCache struct {
	mu    sync.Mutex
	roots *x509.CertPool
	ok    map[[32]byte]bool
}

// peerTrusted reports whether the chain a node API caller presented still
// verifies against this node's current roots: after a CA rotation drops
// the old root, a connection opened with an old-root certificate is
// refused like a new one.
func (n *Node) peerTrusted(cs *tls.ConnectionState) bool {
	inc := n.current()
	if inc == nil || cs == nil || len(cs.PeerCertificates) == 0 {
		return inc == nil
	}
	creds := inc.creds.Load()
	leaf := cs.PeerCertificates[0]
	key := sha256.Sum256(leaf.Raw)
	c := &inc.peerTrust
	c.mu.Lock()
	if c.roots != creds.Roots || len(c.ok) > 4096 {
		c.roots, c.ok = creds.Roots, map[[32]byte]bool{}
	}
	ok, hit := c.ok[key]
	c.mu.Unlock()
	if hit {
		return ok
	}
	_, err := ca.Verify(leaf, cs.PeerCertificates[1:], creds.Roots, time.Now())
	ok = err == nil
	c.mu.Lock()
	if c.roots == creds.Roots {
		c.ok[key] = ok
	}
	c.mu.Unlock()
	return ok
}
