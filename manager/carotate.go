package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
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
			return nil, api.Errorf(api.CodeConflict, "CA rotation %s to another root is in progress: wait for it to finish, or run 'holdfast ca --follow' to follow it", running.ID)
		}
		return a.CARotation(ctx)
	}
	now := a.now().UTC()
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
			return nil, api.Errorf(api.CodeConflict, "another CA rotation started meanwhile: run 'holdfast ca --follow' to follow it")
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
	// Linearized: a manager behind the leader may not have applied the
	// rotation yet, and "no rotation" from it would tell the node there
	// is nothing to report, which it would then never report again.
	rn, err := a.writes.linearize(ctx)
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

// peerTrustCache remembers which callers' certificates verify against one
// set of roots, so that each request does not verify signatures again.
type peerTrustCache struct {
	mu    sync.Mutex
	roots *x509.CertPool
	ok    map[[32]byte]bool
}

// peerTrusted reports whether the chain a node API caller presented still
// verifies against the current roots of inc (the running incarnation, or
// nil): after a CA rotation drops the old root, a connection opened with
// an old-root certificate is refused like a new one. The access component
// asks it (newAccess), with inc's peerTrust as the cache.
func peerTrusted(inc *incarnation, cs *tls.ConnectionState) bool {
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
	_, err := ca.Verify(leaf, cs.PeerCertificates[1:], creds.Roots, inc.tcfg.Now())
	ok = err == nil
	c.mu.Lock()
	if c.roots == creds.Roots {
		c.ok[key] = ok
	}
	c.mu.Unlock()
	return ok
}
