package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// startCredentials loads a node's credentials when an incarnation starts,
// and renews a certificate that expired while the node was down through
// the recovery route of the managers it knows (the renewal part of
// expired.go's story: docs/DESIGN-NOTES.md, "Expired certificates").
type startCredentials struct {
	files *keyfiles.Store
	log   *slog.Logger
	now   func() time.Time // the node's clock
}

// load loads this node's credentials for start. An expired
// certificate is renewed through another manager; failing that, a
// manager in raftRecover mode (force-new-cluster) starts on it and renews
// from its own CA once it leads; otherwise the error wraps errCertExpired.
func (sc startCredentials) load(ctx context.Context, info *nodeInfo, mode raftMode) (*transport.Credentials, error) {
	certs, err := sc.files.LoadCerts(info.NodeID)
	if err != nil {
		return nil, err
	}
	creds, err := transport.LoadCredentialsAt(certs.CertPEM, certs.KeyPEM, certs.RootPEM, sc.now())
	if err == nil {
		return creds, nil
	}
	chain, perr := ca.ParseCertPEM(certs.CertPEM)
	if perr != nil || !ca.Expired(chain[0].NotAfter, sc.now()) {
		return nil, fmt.Errorf("load node certificate: %w", err)
	}
	sc.log.Warn("this node's certificate expired while it was down; asking another manager to renew it", "expired", chain[0].NotAfter.UTC().Format(time.RFC3339))
	rerr := sc.recoverExpired(ctx, info, certs)
	if rerr == nil {
		certs, err = sc.files.LoadCerts(info.NodeID)
		if err != nil {
			return nil, err
		}
		return transport.LoadCredentialsAt(certs.CertPEM, certs.KeyPEM, certs.RootPEM, sc.now())
	}
	if mode == raftRecover && info.Role == roleManager {
		sc.log.Warn("no manager renewed the expired certificate; forcing a new cluster renews it from this manager's own CA", "err", rerr)
		return transport.LoadCredentialsAt(certs.CertPEM, certs.KeyPEM, certs.RootPEM, chain[0].NotAfter.Add(-time.Second))
	}
	hint := "start the other managers"
	if info.Role == roleManager {
		hint += ", or, if this is the last manager, run 'holdfast init --force-new-cluster'"
	}
	return nil, fmt.Errorf("%w (at %s) and no manager renewed it (%v): %s", errCertExpired, chain[0].NotAfter.UTC().Format(time.RFC3339), rerr, hint)
}

// recoverExpired asks the managers this node knows to renew its expired
// certificate, and saves the new one.
func (sc startCredentials) recoverExpired(ctx context.Context, info *nodeInfo, certs *keyfiles.Certs) error {
	key, err := ca.ParseKey(certs.KeyPEM)
	if err != nil {
		return err
	}
	csr, err := ca.NewCSR(key) // signed by the expired certificate's key
	if err != nil {
		return err
	}
	roots, err := ca.ParseCertPEM(certs.RootPEM)
	if err != nil {
		return err
	}
	err = errors.New("no other manager known")
	for _, m := range info.Managers {
		if m.NodeID == info.NodeID {
			continue
		}
		for _, root := range roots {
			jc := transport.NewJoinClient(ca.DigestOf(root.Raw), 5*time.Second, sc.now)
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var resp *api.RenewResponse
			resp, err = api.NewClient(jc, "https://"+m.Addr).Recover(rctx, api.RecoverRequest{CertPEM: certs.CertPEM, CSR: csr})
			cancel()
			jc.CloseIdleConnections()
			if err != nil {
				if errors.Is(err, transport.ErrCAMismatch) {
					continue
				}
				break
			}
			if _, err = transport.LoadCredentialsAt(resp.CertPEM, certs.KeyPEM, resp.RootPEM, sc.now()); err != nil {
				return fmt.Errorf("renewed certificate from %s: %w", m.Addr, err)
			}
			sc.log.Info("expired certificate renewed", "through", m.Addr)
			return sc.files.SaveCerts(info.NodeID, &keyfiles.Certs{RootPEM: resp.RootPEM, CertPEM: resp.CertPEM, KeyPEM: certs.KeyPEM})
		}
	}
	return err
}
