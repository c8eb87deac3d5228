package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// Credentials is a node's TLS material. Cert.Certificate is the chain the
// node presents, leaf DER first and the root DER last, so that joiners can
// see the root; Cert.Leaf is the parsed leaf. Roots are the CAs peers must
// chain to. ID is the identity in the leaf. A Credentials value must not be
// modified once stored in a CredStore.
type Credentials struct {
	Cert  tls.Certificate
	Roots *x509.CertPool
	ID    ca.Identity
}

// LoadCredentials builds Credentials from PEM: certPEM holds the leaf (and
// optionally intermediates after it), keyPEM its private key, rootPEM one or
// more root certificates. The key must match the leaf, and the leaf must
// verify against the roots now, with a valid node identity.
func LoadCredentials(certPEM, keyPEM, rootPEM []byte) (*Credentials, error) {
	return LoadCredentialsAt(certPEM, keyPEM, rootPEM, time.Now())
}

// LoadCredentialsAt is LoadCredentials with the leaf verified at time at
// instead of now. Only the recovery of an expired certificate uses it: such
// credentials are refused by every peer's handshake.
//
// When certPEM holds certificates after the leaf (during a CA rotation: the
// cross-signed new root, the old root and the new one), the node presents
// exactly that chain, so peers that trust only the old root can verify it;
// otherwise it presents the verified chain, leaf then root.
func LoadCredentialsAt(certPEM, keyPEM, rootPEM []byte, at time.Time) (*Credentials, error) {
	chain, err := ca.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load credentials: node certificate: %w", err)
	}
	key, err := ca.ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	roots, err := ca.ParseCertPEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("load credentials: roots: %w", err)
	}
	leaf := chain[0]
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("load credentials: %w", ca.ErrKeyMismatch)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	id, verified, err := ca.VerifyChain(leaf, chain[1:], pool, at)
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	if len(chain) > 1 {
		verified = chain
	}
	der := make([][]byte, 0, len(verified))
	for _, c := range verified {
		der = append(der, c.Raw)
	}
	return &Credentials{
		Cert:  tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf},
		Roots: pool,
		ID:    id,
	}, nil
}

// CredStore holds the current Credentials. It is safe for concurrent use.
// Every handshake reads it once, so a Store takes effect for new
// connections.
type CredStore struct {
	p atomic.Pointer[Credentials]
}

// NewCredStore returns a store holding c (which may be nil: handshakes then
// fail with ErrNoCredentials until Store is called).
func NewCredStore(c *Credentials) *CredStore {
	s := &CredStore{}
	s.p.Store(c)
	return s
}

// Load returns the current credentials, or nil if there are none.
func (s *CredStore) Load() *Credentials { return s.p.Load() }

// Store replaces the current credentials.
func (s *CredStore) Store(c *Credentials) { s.p.Store(c) }

// load returns the current credentials or an error if there are none.
func (s *CredStore) load() (*Credentials, error) {
	if s == nil {
		return nil, ErrNoCredentials
	}
	c := s.p.Load()
	if c == nil || c.Roots == nil || len(c.Cert.Certificate) == 0 {
		return nil, ErrNoCredentials
	}
	return c, nil
}
