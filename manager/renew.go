package manager

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// clock is what certificate renewal needs of time; tests put in a fake.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func (n *Node) clock() clock {
	if c, ok := n.clk.Load().(clock); ok {
		return c
	}
	return realClock{}
}

// renewal window: a node renews at a random point between these fractions
// of its certificate's lifetime.
const (
	renewFrom = 0.5
	renewTo   = 0.8
)

// renewalDelay returns how long to wait, from now, until the point frac
// (0..1) of the way through the renewal window of a certificate valid from
// notBefore to notAfter; zero if that point has passed.
func renewalDelay(notBefore, notAfter, now time.Time, frac float64) time.Duration {
	life := notAfter.Sub(notBefore)
	at := notBefore.Add(time.Duration(float64(life) * (renewFrom + (renewTo-renewFrom)*frac)))
	return max(at.Sub(now), 0)
}

// renewLoop renews this node's certificate at a random point between 50%
// and 80% of its lifetime, authenticated by the current certificate, with
// backoff on failure.
func (n *Node) renewLoop(ctx context.Context, inc *incarnation) {
	clk := n.clock()
	for {
		leaf := inc.creds.Load().Cert.Leaf
		d := renewalDelay(leaf.NotBefore, leaf.NotAfter, clk.Now(), rand.Float64())
		select {
		case <-ctx.Done():
			return
		case <-clk.After(d):
		}
		backoff := time.Second
		for {
			err := n.renewCert(ctx, inc)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			n.logger.Warn("certificate renewal failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-clk.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Minute)
		}
	}
}

// renewCert gets this node a new certificate for a new key: a manager from
// the CA in its own replicated state, a worker from a manager.
func (n *Node) renewCert(ctx context.Context, inc *incarnation) error {
	key, err := ca.NewKey()
	if err != nil {
		return err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return err
	}
	req := api.RenewRequest{CSR: csr}
	var resp *api.RenewResponse
	if inc.rn() != nil {
		resp, err = n.apis.node.Renew(ctx, api.Peer{NodeID: inc.info.NodeID, Role: roleManager}, req)
	} else {
		err = errors.New("no manager known")
		for _, m := range inc.managers() {
			rctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
			resp, err = peerClient(inc, m.Addr).Renew(rctx, req)
			cancel()
			if err == nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	if resp.Role != inc.info.Role {
		// The cluster changed this node's role: the role change renews.
		inc.wantRole.Store(resp.Role)
		n.requestRoleChange()
		return nil
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		return err
	}
	creds, err := transport.LoadCredentials(resp.CertPEM, keyPEM, resp.RootPEM)
	if err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	inc.certMu.Lock()
	defer inc.certMu.Unlock()
	if err := n.keyFiles.SaveCerts(inc.info.NodeID, &keyfiles.Certs{RootPEM: resp.RootPEM, CertPEM: resp.CertPEM, KeyPEM: keyPEM}); err != nil {
		return err
	}
	inc.setCreds(creds)
	n.logger.Info("certificate renewed", "expires", creds.Cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}
