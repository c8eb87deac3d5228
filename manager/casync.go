package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/backoff"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// caSyncer makes this node follow the CA views it is given (caFeed on a
// manager, the self long-poll on a worker), retrying with backoff until it
// has caught up with the latest one. What it does next is
// ca.NextNodeStep's decision.
type caSyncer struct {
	views <-chan *api.CAView
	creds *transport.CredStore
	// renew gets a new certificate from the issuing root (renewer.Renew).
	renew func(ctx context.Context) error
	// closeIdle drops kept-alive connections, so later calls present the
	// new certificate.
	closeIdle func()
	loadCerts func() (*keyfiles.Certs, error)
	saveCerts func(*keyfiles.Certs) error
	setCreds  func(*transport.Credentials)
	certMu    *sync.Mutex // one writer of the certificate files at a time
	// now is the node's wall clock; nil means time.Now.
	now func() time.Time
	// report tells the cluster this node holds a new-root certificate.
	report func(ctx context.Context, rotationID string) error
	log    *slog.Logger
}

func (c *caSyncer) Run(ctx context.Context) error {
	var cur *api.CAView
	var done [32]byte
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	bo := backoff.New(100*time.Millisecond, 10*time.Second)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case v := <-c.views:
			cur = v
		case <-retry.C:
		}
		if cur == nil || viewKey(cur) == done {
			continue
		}
		if err := c.sync(ctx, cur); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait := bo.Next()
			c.log.Warn("cannot follow the cluster's CA yet; retrying", "err", err, "in", wait)
			retry.Reset(wait)
			continue
		}
		done = viewKey(cur)
		bo.Reset()
	}
}

// sync brings this node onto view v: a certificate from the issuing root
// (renewing if need be), the roots and chain v says, and, during a
// rotation, the new certificate reported.
func (c *caSyncer) sync(ctx context.Context, v *api.CAView) error {
	trust, err := ca.ParseCertPEM(v.TrustPEM)
	if err != nil {
		return fmt.Errorf("cluster's roots: %w", err)
	}
	var issuer *x509.Certificate
	for _, r := range trust {
		if ca.DigestOf(r.Raw) == v.IssuerDigest {
			issuer = r
		}
	}
	if issuer == nil {
		return errors.New("the issuing root is not among the roots to trust")
	}
	renewed, reported := false, false
	for {
		st := ca.NodeCA{
			FromIssuer: c.creds.Load().Cert.Leaf.CheckSignatureFrom(issuer) == nil,
			RotationID: v.RotationID,
			Recorded:   v.Converted || reported,
		}
		if st.FromIssuer {
			if st.TrustCurrent, err = c.trustCurrent(v); err != nil {
				return err
			}
		}
		switch ca.NextNodeStep(st) {
		case ca.StepNone:
			return nil
		case ca.StepRenew:
			if renewed {
				return errors.New("the renewed certificate is not from the new root yet")
			}
			c.log.Info("renewing onto the cluster's new root", "root", v.IssuerDigest)
			if err := c.renew(ctx); err != nil {
				return fmt.Errorf("renew onto the new root: %w", err)
			}
			c.closeIdle() // later calls present the new certificate
			renewed = true
		case ca.StepTrust:
			if err := c.refreshTrust(v); err != nil {
				return err
			}
		case ca.StepReport:
			if err := c.report(ctx, v.RotationID); err != nil {
				return err
			}
			reported = true
		default:
			return fmt.Errorf("unexpected CA step %v", ca.NextNodeStep(st))
		}
	}
}

// presented is the certificate file this node should hold under view v:
// its certificate, then the chain v says.
// clock reads the node's wall clock.
func (c *caSyncer) clock() time.Time {
	if c.now == nil {
		return time.Now()
	}
	return c.now()
}

func (c *caSyncer) presented(v *api.CAView) []byte {
	leaf := c.creds.Load().Cert.Leaf
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), v.ChainPEM...)
}

// trustCurrent reports whether the files hold the roots and chain v says.
func (c *caSyncer) trustCurrent(v *api.CAView) (bool, error) {
	c.certMu.Lock()
	defer c.certMu.Unlock()
	files, err := c.loadCerts()
	if err != nil {
		return false, err
	}
	return bytes.Equal(files.CertPEM, c.presented(v)) && bytes.Equal(files.RootPEM, v.TrustPEM), nil
}

// refreshTrust rewrites the node's roots and presented chain when v says
// otherwise than the files, keeping its certificate and key.
func (c *caSyncer) refreshTrust(v *api.CAView) error {
	c.certMu.Lock()
	defer c.certMu.Unlock()
	files, err := c.loadCerts()
	if err != nil {
		return err
	}
	certPEM := c.presented(v)
	if bytes.Equal(files.CertPEM, certPEM) && bytes.Equal(files.RootPEM, v.TrustPEM) {
		return nil
	}
	creds, err := transport.LoadCredentialsAt(certPEM, files.KeyPEM, v.TrustPEM, c.clock())
	if err != nil {
		return fmt.Errorf("new roots: %w", err)
	}
	if err := c.saveCerts(&keyfiles.Certs{RootPEM: v.TrustPEM, CertPEM: certPEM, KeyPEM: files.KeyPEM}); err != nil {
		return err
	}
	c.setCreds(creds)
	c.closeIdle()
	c.log.Info("trusted roots changed", "roots", len(bytes.Split(bytes.TrimSpace(v.TrustPEM), []byte("-----END CERTIFICATE-----")))-1, "rotation", v.RotationID)
	return nil
}

// newCASyncer builds inc's CA follower.
func newCASyncer(n *Node, inc *incarnation) *caSyncer {
	return &caSyncer{
		views:     inc.caViews,
		creds:     inc.creds,
		renew:     newRenewer(n, inc).Renew,
		closeIdle: func() { inc.nodeHTTP.CloseIdleConnections() },
		loadCerts: func() (*keyfiles.Certs, error) { return n.keyFiles.LoadCerts(inc.info.NodeID) },
		saveCerts: func(c *keyfiles.Certs) error { return n.keyFiles.SaveCerts(inc.info.NodeID, c) },
		setCreds:  inc.setCreds,
		certMu:    &inc.certMu,
		now:       n.cfg.now,
		report: func(ctx context.Context, rotID string) error {
			if inc.rn() != nil {
				return recordConverted(ctx, n.writes.apply, rotID, inc.info.NodeID)
			}
			err := errors.New("no manager known")
			for _, m := range inc.managers() {
				rctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
				err = peerClient(inc, m.Addr).CAConverted(rctx)
				cancel()
				if err == nil {
					return nil
				}
			}
			return fmt.Errorf("report the new certificate: %w", err)
		},
		log: n.logger,
	}
}

// recordConverted records, through apply, that nodeID holds a new-root
// certificate for rotation rotID; a rotation that ended meanwhile needs
// nothing.
func recordConverted(ctx context.Context, apply func(context.Context, fsm.Command) error, rotID, nodeID string) error {
	err := apply(ctx, &fsm.CARotateNode{ID: rotID, NodeID: nodeID})
	if errors.Is(err, fsm.ErrNoRotation) {
		return nil
	}
	return err
}

// caFeed turns a manager's state changes into CA views for its caSyncer,
// and keeps the list of the other managers on disk (for the recovery of an
// expired certificate).
type caFeed struct {
	state stateView
	self  string
	views chan *api.CAView
	// remember saves the other managers' addresses; it asks raft for its
	// configuration, so it runs at most every five seconds.
	remember func()
}

func (f *caFeed) Run(ctx context.Context) error {
	var remembered time.Time
	for {
		ch := f.state.Changed()
		var v *api.CAView
		f.state.Read(func(s *fsm.State, _ uint64) { v = selfCAView(s, f.self) })
		if v != nil {
			offerView(f.views, v)
		}
		if time.Since(remembered) > 5*time.Second {
			f.remember()
			remembered = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
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
