package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"
)

// LeafBackdate is how far before its issue a node certificate's NotBefore
// is set, for clocks that run behind: a certificate was issued at
// NotBefore + LeafBackdate.
const LeafBackdate = leafBackdate

const (
	// RootCommonName is the CN of every root created by NewRoot.
	RootCommonName = "holdfast root CA"
	// RootValidityYears is how long a root created by NewRoot is valid.
	RootValidityYears = 20

	rootBackdate = time.Hour
	leafBackdate = time.Minute
)

// Root is a cluster's root CA: its certificate and private key. A Root is
// immutable and safe for concurrent use.
type Root struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
	digest  string
}

// NewRoot creates a self-signed ECDSA P-256 root CA for clusterID (which must
// be a ValidID), valid for RootValidityYears from now-1h, with
// CN RootCommonName and O clusterID.
func NewRoot(clusterID string, now time.Time) (*Root, error) {
	return newRootNamed(clusterID, RootCommonName, now)
}

// NewRotationRoot is NewRoot for a CA rotation: its CN is RootCommonName
// followed by a random suffix, so that it differs from the root it
// replaces (standard tools such as openssl cannot chain through a
// cross-signed certificate whose subject equals its issuer's).
func NewRotationRoot(clusterID string, now time.Time) (*Root, error) {
	return newRootNamed(clusterID, RootCommonName+" "+NewID()[:8], now)
}

func newRootNamed(clusterID, cn string, now time.Time) (*Root, error) {
	if !ValidID(clusterID) {
		return nil, fmt.Errorf("new root: %w: cluster id is not a valid id", ErrBadIdentity)
	}
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	notBefore := now.Add(-rootBackdate)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{clusterID}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(RootValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new root: create certificate: %w", err)
	}
	keyPEM, err := MarshalKey(key)
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	return newRoot(certPEM(der), keyPEM)
}

// ParseRoot loads a root from its certificate PEM (exactly one certificate)
// and its private key PEM. The certificate must be a CA certificate allowed
// to sign certificates, with an ECDSA P-256 key that the private key matches.
func ParseRoot(certPEMBytes, keyPEM []byte) (*Root, error) {
	r, err := newRoot(certPEMBytes, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse root: %w", err)
	}
	return r, nil
}

func newRoot(certPEMBytes, keyPEM []byte) (*Root, error) {
	certs, err := ParseCertPEM(certPEMBytes)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%w: %d certificates, want exactly 1", ErrBadCert, len(certs))
	}
	cert := certs[0]
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("%w: basic constraints do not mark it as a CA", ErrNotCA)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: key usage does not allow signing certificates", ErrNotCA)
	}
	if err := checkPublicKey(cert.PublicKey); err != nil {
		return nil, fmt.Errorf("root certificate key: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, ErrKeyMismatch
	}
	normKey, err := MarshalKey(key)
	if err != nil {
		return nil, err
	}
	return &Root{
		cert:    cert,
		key:     key,
		certPEM: certPEM(cert.Raw),
		keyPEM:  normKey,
		digest:  DigestOf(cert.Raw),
	}, nil
}

// Certificate returns the root certificate. Callers must not modify it.
func (r *Root) Certificate() *x509.Certificate { return r.cert }

// CertPEM returns the root certificate as PEM.
func (r *Root) CertPEM() []byte { return bytes.Clone(r.certPEM) }

// KeyPEM returns the root private key as PKCS#8 PEM. It is secret.
func (r *Root) KeyPEM() []byte { return bytes.Clone(r.keyPEM) }

// Digest returns DigestOf the root certificate: the value join tokens pin.
func (r *Root) Digest() string { return r.digest }

// ClusterID returns the root's O, the cluster ID it was created for.
func (r *Root) ClusterID() string {
	if len(r.cert.Subject.Organization) != 1 {
		return ""
	}
	return r.cert.Subject.Organization[0]
}

// DigestOf returns the SHA-256 of a certificate's DER as lowercase hex (64
// characters).
func DigestOf(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return hex.EncodeToString(sum[:])
}

// IssueNewKey makes a new key and issues a certificate for it as id, for
// a node whose certificate is made where the CA is (init, a restore). It
// returns the certificate and the key as PEM, and the certificate's
// record (see Issue).
func (r *Root) IssueNewKey(id Identity, validity time.Duration, now time.Time) (certPEM, keyPEM []byte, rec Record, err error) {
	key, err := NewKey()
	if err != nil {
		return nil, nil, Record{}, err
	}
	csr, err := NewCSR(key)
	if err != nil {
		return nil, nil, Record{}, err
	}
	if certPEM, err = r.Issue(csr, id, validity, now); err != nil {
		return nil, nil, Record{}, err
	}
	if keyPEM, err = MarshalKey(key); err != nil {
		return nil, nil, Record{}, err
	}
	rec, err = RecordOfPEM(certPEM)
	return certPEM, keyPEM, rec, err
}

// Issue issues a node certificate for the public key in csrDER, after
// checking the CSR's self-signature. The subject comes from id, never from
// the CSR: CN id.NodeID, OU the role's OU, O id.ClusterID, which must be the
// root's cluster. The certificate allows digital signatures for TLS server
// and client authentication, is valid from now-1m to now+validity (capped at
// the root's NotAfter) and has a random 128-bit serial. It returns the
// certificate as PEM.
func (r *Root) Issue(csrDER []byte, id Identity, validity time.Duration, now time.Time) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	if id.ClusterID != r.ClusterID() {
		return nil, fmt.Errorf("issue: %w: cluster id is not this root's cluster", ErrBadIdentity)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("issue: validity %v is not positive", validity)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("issue: %w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("issue: %w: self-signature: %w", ErrBadCSR, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("issue: %w: %w", ErrBadCSR, err)
	}
	notAfter := now.Add(validity)
	if notAfter.After(r.cert.NotAfter) {
		notAfter = r.cert.NotAfter
	}
	notBefore := now.Add(-leafBackdate)
	if !notBefore.Before(notAfter) {
		return nil, fmt.Errorf("issue: root expires at %v, before the certificate would start", r.cert.NotAfter)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         id.NodeID,
			OrganizationalUnit: []string{roleOU[id.Role]},
			Organization:       []string{id.ClusterID},
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, csr.PublicKey, r.key)
	if err != nil {
		return nil, fmt.Errorf("issue: create certificate: %w", err)
	}
	return certPEM(der), nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
