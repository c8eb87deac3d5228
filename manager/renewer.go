package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/backoff"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// clock is what certificate renewal needs of time; tests put in a fake.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// nodeClock is the node's wall clock (Config.Clock) with real timers.
type nodeClock struct{ now func() time.Time }

func (c nodeClock) Now() time.Time                       { return c.now() }
func (nodeClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// renewer renews this node's certificate: at the point ca.RenewAt picks
// (a random point between 50% and 80% of its lifetime), on CA rotation
// (caSyncer calls Renew), and on a forced new cluster whose certificate
// expired (RenewIfExpired). A manager issues from the CA in its own state,
// a worker asks a manager; either way authenticated by the current
// certificate.
type renewer struct {
	self string
	// role is the role this node runs as now.
	role  func() ca.Role
	creds *transport.CredStore
	// setCreds installs new credentials (and tells the access watcher).
	setCreds func(*transport.Credentials)
	// issue asks the cluster for a certificate for the CSR in req.
	issue func(ctx context.Context, req api.RenewRequest) (*api.RenewResponse, error)
	// wantRole asks the role supervisor for a role change.
	wantRole func(role ca.Role)
	save     func(*keyfiles.Certs) error
	certMu   *sync.Mutex // one writer of the certificate files at a time
	clock    clock
	random   func() float64
	log      *slog.Logger
}

// Run renews at each certificate's renewal point, with backoff on failure.
func (r *renewer) Run(ctx context.Context) error {
	for {
		leaf := r.creds.Load().Cert.Leaf
		d := ca.RenewIn(leaf.NotBefore, leaf.NotAfter, r.clock.Now(), r.random)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.clock.After(d):
		}
		bo := backoff.New(time.Second, 5*time.Minute)
		for {
			err := r.Renew(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait := bo.Next()
			r.log.Warn("certificate renewal failed; retrying", "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.clock.After(wait):
			}
		}
	}
}

// Renew gets this node a new certificate for a new key.
func (r *renewer) Renew(ctx context.Context) error {
	resp, keyPEM, creds, err := newKeyCertificate(ctx, r.role(), r.clock.Now, r.issue)
	if err != nil {
		return err
	}
	if creds == nil {
		// The cluster changed this node's role: the role change renews.
		r.wantRole(resp.Role)
		return nil
	}
	r.certMu.Lock()
	defer r.certMu.Unlock()
	if err := r.save(&keyfiles.Certs{RootPEM: resp.RootPEM, CertPEM: resp.CertPEM, KeyPEM: keyPEM}); err != nil {
		return err
	}
	r.setCreds(creds)
	r.log.Info("certificate renewed", "expires", creds.Cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// RenewIfExpired gives a manager that leads a forced new cluster a fresh
// certificate from the CA in its own state, if its own has expired.
func (r *renewer) RenewIfExpired(ctx context.Context) error {
	if !ca.Expired(r.creds.Load().Cert.Leaf.NotAfter, r.clock.Now()) {
		return nil
	}
	if err := r.Renew(ctx); err != nil {
		return fmt.Errorf("renew the expired certificate from this manager's CA: %w", err)
	}
	r.log.Warn("this manager's expired certificate was renewed from its own CA")
	return nil
}

// newRenewer builds inc's renewer.
func newRenewer(n *Node, inc *incarnation) *renewer {
	clk, ok := n.clk.Load().(clock)
	if !ok {
		clk = nodeClock{now: n.cfg.now}
	}
	return &renewer{
		self:     inc.info.NodeID,
		role:     func() ca.Role { return inc.info.Role },
		creds:    inc.creds,
		setCreds: inc.setCreds,
		issue: func(ctx context.Context, req api.RenewRequest) (*api.RenewResponse, error) {
			if inc.rn() != nil {
				return n.apis.node.Renew(ctx, api.Peer{NodeID: inc.info.NodeID, Role: roleManager}, req)
			}
			var resp *api.RenewResponse
			err := errors.New("no manager known")
			for _, m := range inc.managers() {
				rctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
				resp, err = peerClient(inc, m.Addr).Renew(rctx, req)
				cancel()
				if err == nil {
					break
				}
			}
			return resp, err
		},
		wantRole: func(role ca.Role) { askRole(inc, n.roleChange, ca.RoleTarget{Role: role}) },
		save:     func(c *keyfiles.Certs) error { return n.keyFiles.SaveCerts(inc.info.NodeID, c) },
		certMu:   &inc.certMu,
		clock:    clk,
		random:   rand.Float64,
		log:      n.logger,
	}
}

// newKeyCertificate asks issue for a certificate for a new key. It
// returns issue's answer and, when the answer is for role want, the key
// and the credentials they make; creds is nil when the cluster answered
// with another role. It writes nothing.
func newKeyCertificate(ctx context.Context, want ca.Role, now func() time.Time, issue func(context.Context, api.RenewRequest) (*api.RenewResponse, error)) (resp *api.RenewResponse, keyPEM []byte, creds *transport.Credentials, err error) {
	key, err := ca.NewKey()
	if err != nil {
		return nil, nil, nil, err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return nil, nil, nil, err
	}
	if resp, err = issue(ctx, api.RenewRequest{CSR: csr}); err != nil {
		return nil, nil, nil, err
	}
	if resp.Role != want {
		return resp, nil, nil, nil
	}
	if keyPEM, err = ca.MarshalKey(key); err != nil {
		return nil, nil, nil, err
	}
	if creds, err = transport.LoadCredentialsAt(resp.CertPEM, keyPEM, resp.RootPEM, now()); err != nil {
		return nil, nil, nil, fmt.Errorf("new certificate: %w", err)
	}
	return resp, keyPEM, creds, nil
}
