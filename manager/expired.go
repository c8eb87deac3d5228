package manager

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
)

// Recovery of a node whose certificate expired while it was down. Every
// handshake refuses an expired certificate, so such a node cannot renew
// the normal way. Instead it asks another manager over the join protocol
// (no client certificate) with its expired certificate and a CSR signed by
// that certificate's key. The manager renews it only if the certificate
// was issued by a root the cluster trusts now, names this cluster, and
// belongs to a node that is still a member (not removed), and only for the
// same key. A lone manager, with no one to ask, gets a fresh certificate
// from the CA in its own state during 'init --force-new-cluster'.
// docs/DESIGN-NOTES.md gives the reasoning.

// DefaultRecoveryFactor times the cluster's certificate expiry is how long
// after its expiry a certificate may be recovered, unless
// Config.CertRecoveryWindow says otherwise.
const DefaultRecoveryFactor = 2

// recoveryRole decides whether the expired certificate leaf (identity id)
// may be renewed now, and with which role. The certificate must be the
// latest the cluster issued the node (rec's serial and key hash, or, in a
// record from before they were kept, its expiry), must have expired no
// longer than window ago, and the role is never higher than the one leaf
// carried: a key the node has long since replaced, or a worker's key of a
// node promoted since, gets nothing.
func recoveryRole(rec *fsm.Node, leaf *x509.Certificate, id ca.Identity, window time.Duration, now time.Time) (ca.Role, error) {
	if now.Sub(leaf.NotAfter) > window {
		return "", fmt.Errorf("it expired at %s, more than %s ago: remove the node ('holdfast node rm') and join it again", leaf.NotAfter.UTC().Format(time.RFC3339), window)
	}
	got := ca.RecordOf(leaf)
	if rec.CertSerial != "" || rec.CertKeySHA256 != "" {
		if got.Serial != rec.CertSerial || got.KeySHA256 != rec.CertKeySHA256 {
			return "", fmt.Errorf("it is not the latest certificate the cluster issued node %s (serial %s, key %.12s…)", id.NodeID, got.Serial, got.KeySHA256)
		}
	} else if !got.NotAfter.Equal(rec.CertExpiresAt) {
		return "", fmt.Errorf("it is not the latest certificate the cluster issued node %s (it expired at %s, the latest at %s)", id.NodeID, got.NotAfter.Format(time.RFC3339), rec.CertExpiresAt.UTC().Format(time.RFC3339))
	}
	if rec.Role == roleManager && id.Role == roleManager {
		return roleManager, nil
	}
	return roleWorker, nil
}

// errCertExpired is why a node with an expired certificate could not start.
var errCertExpired = errors.New("this node's certificate has expired")

// Recover serves POST /join/recover.
func (a *joinAPI) Recover(ctx context.Context, req api.RecoverRequest) (*api.RenewResponse, error) {
	_, rn, err := a.writes.managerRaft()
	if err != nil {
		return nil, err
	}
	certs, err := ca.ParseCertPEM(req.CertPEM)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "expired certificate: %v", err)
	}
	leaf := certs[0]
	if err := a.skew.checkIssue(); err != nil {
		return nil, err
	}
	now := a.now()
	if now.Before(leaf.NotAfter) {
		return nil, api.Errorf(api.CodeInvalidArgument, "the certificate has not expired: renew it over the node API")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil || csr.CheckSignature() != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "certificate request: %v", ca.ErrBadCSR)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(csr.PublicKey) {
		return nil, api.Errorf(api.CodeUnauthenticated, "the certificate request is not signed by the expired certificate's key")
	}
	var node fsm.Node
	var expiry time.Duration
	var role ca.Role
	var plan *caPlan
	err = a.writes.readState(ctx, func(s *fsm.State) error {
		p, err := planOf(s)
		if err != nil {
			return err
		}
		plan = p
		pool := x509.NewCertPool()
		trust, err := ca.ParseCertPEM(p.trustPEM())
		if err != nil {
			return err
		}
		for _, c := range trust {
			pool.AddCert(c)
		}
		// Was it valid, from a root trusted now, just before it expired?
		id, err := ca.Verify(leaf, certs[1:], pool, leaf.NotAfter.Add(-time.Second))
		if err != nil {
			return api.Errorf(api.CodeUnauthenticated, "expired certificate refused: %v", err)
		}
		if id.ClusterID != s.Cluster.ID {
			return api.Errorf(api.CodeUnauthenticated, "expired certificate refused: it is for another cluster")
		}
		if s.IsRemoved(id.NodeID, now) {
			return api.Errorf(api.CodeUnauthenticated, "expired certificate refused: node %s was removed from the cluster", id.NodeID)
		}
		rec, ok := s.Nodes[id.NodeID]
		if !ok {
			return api.Errorf(api.CodeUnauthenticated, "expired certificate refused: node %s is not a member of this cluster", id.NodeID)
		}
		node, expiry = *rec, s.Cluster.Settings.CertExpiry
		window := a.recoveryWindow
		if window == 0 {
			window = DefaultRecoveryFactor * expiry
		}
		if role, err = recoveryRole(rec, leaf, id, window, now); err != nil {
			return api.Errorf(api.CodeUnauthenticated, "expired certificate refused: %v", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	certPEM, err := plan.issuer().Issue(req.CSR, ca.Identity{NodeID: node.ID, Role: role, ClusterID: rn.clusterID}, expiry, now)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "certificate request: %v", err)
	}
	rec, err := ca.RecordOfPEM(certPEM)
	if err != nil {
		return nil, err
	}
	if err := a.writes.apply(ctx, certUpdate(node.ID, rec)); err != nil {
		return nil, err
	}
	a.logger.Warn("renewed the expired certificate of a node", "node_id", node.ID, "role", role, "expired", leaf.NotAfter.UTC().Format(time.RFC3339))
	return &api.RenewResponse{Role: role, CertPEM: plan.chain(certPEM), RootPEM: plan.trustPEM()}, nil
}

// errExpired refuses init and join on a manager that has cluster state but
// could not start because its certificate expired: they would wipe it.
// n.mu must be held.
func (n *Node) errExpired() error {
	if n.expired == nil {
		return nil
	}
	return api.Errorf(api.CodeConflict, "this manager has cluster state, but its certificate expired and no manager renewed it yet: start another manager (this one retries every few seconds), or, if this is the last manager, run 'holdfast init --force-new-cluster'")
}
