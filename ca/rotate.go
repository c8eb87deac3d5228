package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// MinRotationRootValidity is how long, at least, a root that a rotation
// moves to must still be valid.
const MinRotationRootValidity = 365 * 24 * time.Hour

// ErrBadRotation is returned for a root a rotation cannot move to: the same
// root, another cluster's, or one that expires too soon.
var ErrBadRotation = errors.New("unusable root for a CA rotation")

// Rotation is a CA rotation from Old to New: New's certificate cross-signed
// by Old's key (Cross) lets a node that trusts only Old verify a
// certificate New issued, when the certificate is presented with Cross. A
// Rotation is immutable.
//
// The stages, and what each side trusts and presents:
//
//   - rotating: nodes trust Old and New (TrustPEM); New issues every
//     certificate, presented as leaf + Cross + Old + New (ChainPEM), so a
//     node still on Old verifies it through Cross, and a joiner finds the
//     root its token pins in the chain.
//   - done (every node holds a certificate from New): nodes trust New
//     alone; certificates are presented as leaf + New; Old, and every
//     certificate it issued, is refused.
type Rotation struct {
	Old, New *Root
	cross    *x509.Certificate
}

// NewRotation checks that next can replace old at time now and cross-signs
// next's certificate with old's key. next must differ from old (key and
// subject: see NewRotationRoot), be a root of the same cluster (O = cluster ID, which node certificates carry), and
// be valid for at least MinRotationRootValidity from now.
func NewRotation(old, next *Root, now time.Time) (*Rotation, error) {
	if old == nil || next == nil {
		return nil, fmt.Errorf("%w: no root", ErrBadRotation)
	}
	if old.Digest() == next.Digest() {
		return nil, fmt.Errorf("%w: the new root is the current root", ErrBadRotation)
	}
	if next.key.PublicKey.Equal(old.cert.PublicKey) {
		return nil, fmt.Errorf("%w: the new root has the current root's key", ErrBadRotation)
	}
	if bytes.Equal(next.cert.RawSubject, old.cert.RawSubject) {
		return nil, fmt.Errorf("%w: its subject is the current root's; give it another CN (standard tools cannot chain through a cross-signed certificate whose subject equals its issuer's)", ErrBadRotation)
	}
	if next.ClusterID() != old.ClusterID() {
		return nil, fmt.Errorf("%w: its subject O is %q; it must be the cluster ID %s", ErrBadRotation, next.ClusterID(), old.ClusterID())
	}
	if next.cert.NotBefore.After(now) {
		return nil, fmt.Errorf("%w: it is not valid before %s", ErrBadRotation, next.cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if next.cert.NotAfter.Before(now.Add(MinRotationRootValidity)) {
		return nil, fmt.Errorf("%w: it expires at %s, less than a year from now", ErrBadRotation, next.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("cross-sign: %w", err)
	}
	notAfter := next.cert.NotAfter
	if notAfter.After(old.cert.NotAfter) {
		notAfter = old.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            next.cert.RawSubject,
		SubjectKeyId:          next.cert.SubjectKeyId,
		NotBefore:             now.Add(-rootBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs node certificates only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, old.cert, next.cert.PublicKey, old.key)
	if err != nil {
		return nil, fmt.Errorf("cross-sign: %w", err)
	}
	cross, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("cross-sign: %w", err)
	}
	return &Rotation{Old: old, New: next, cross: cross}, nil
}

// LoadRotation rebuilds a Rotation from its parts as stored: the old and
// new roots and the cross-signed certificate (PEM), which must be New's
// subject and key signed by Old.
func LoadRotation(old, next *Root, crossPEM []byte) (*Rotation, error) {
	certs, err := ParseCertPEM(crossPEM)
	if err != nil {
		return nil, fmt.Errorf("load rotation: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("load rotation: %w: %d cross-signed certificates, want 1", ErrBadCert, len(certs))
	}
	c := certs[0]
	if !bytes.Equal(c.RawSubject, next.cert.RawSubject) || !bytes.Equal(c.RawSubjectPublicKeyInfo, next.cert.RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("load rotation: %w: the cross-signed certificate is not the new root's", ErrBadCert)
	}
	if err := c.CheckSignatureFrom(old.cert); err != nil {
		return nil, fmt.Errorf("load rotation: %w: the cross-signed certificate is not signed by the old root: %w", ErrBadCert, err)
	}
	return &Rotation{Old: old, New: next, cross: c}, nil
}

// Cross returns New's certificate signed by Old. Callers must not modify it.
func (r *Rotation) Cross() *x509.Certificate { return r.cross }

// CrossPEM returns Cross as PEM.
func (r *Rotation) CrossPEM() []byte { return certPEM(r.cross.Raw) }

// TrustPEM returns the roots nodes trust while the rotation runs: Old then
// New.
func (r *Rotation) TrustPEM() []byte {
	return append(r.Old.CertPEM(), r.New.CertPEM()...)
}

// ChainPEM returns what a node presents while the rotation runs: leafPEM
// (issued by New), Cross, Old, then New. A node still on Old verifies it
// through Cross; a joiner finds the root its token pins, Old or (once the
// tokens changed) New.
func (r *Rotation) ChainPEM(leafPEM []byte) []byte {
	out := append(bytes.Clone(leafPEM), r.CrossPEM()...)
	out = append(out, r.Old.CertPEM()...)
	return append(out, r.New.CertPEM()...)
}

// IssuedBy reports whether leaf's signature is root's: whether root issued
// it. It checks nothing else (see Verify).
func IssuedBy(leaf *x509.Certificate, root *Root) bool {
	return leaf != nil && root != nil && leaf.CheckSignatureFrom(root.cert) == nil
}
