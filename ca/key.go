package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
)

const (
	pemCertificate  = "CERTIFICATE"
	pemPrivateKey   = "PRIVATE KEY"
	pemECPrivateKey = "EC PRIVATE KEY"
)

// NewKey returns a new ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// MarshalKey encodes a P-256 private key as PKCS#8 PEM.
func MarshalKey(k *ecdsa.PrivateKey) ([]byte, error) {
	if err := checkPublicKey(publicOf(k)); err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w: %w", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

func publicOf(k *ecdsa.PrivateKey) any {
	if k == nil {
		return nil
	}
	return &k.PublicKey
}

// ParseKey decodes exactly one PEM block holding an ECDSA P-256 private key,
// PKCS#8 ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"). Anything but
// whitespace around the block is an error.
func ParseKey(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	block, rest := decodePEM(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("parse key: %w: no PEM block", ErrBadKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("parse key: %w: data after the PEM block", ErrBadKey)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("parse key: %w: PEM headers (encrypted keys are not supported)", ErrBadKey)
	}
	var k any
	var err error
	switch block.Type {
	case pemPrivateKey:
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemECPrivateKey:
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("parse key: %w: PEM block type %q, want %q", ErrBadKey, block.Type, pemPrivateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("parse key: %w: %w", ErrBadKey, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse key: %w: %T, want ECDSA P-256", ErrBadKey, k)
	}
	if err := checkPublicKey(&ek.PublicKey); err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	return ek, nil
}

// checkPublicKey returns an error wrapping ErrBadKey unless pub is an ECDSA
// P-256 public key.
func checkPublicKey(pub any) error {
	ek, ok := pub.(*ecdsa.PublicKey)
	if !ok || ek == nil {
		return fmt.Errorf("%w: %T, want ECDSA P-256", ErrBadKey, pub)
	}
	if ek.Curve != elliptic.P256() {
		return fmt.Errorf("%w: curve is not P-256", ErrBadKey)
	}
	return nil
}

// NewCSR returns a DER certificate signing request for key. The subject is
// empty: Root.Issue takes the subject from the caller, not the CSR.
func NewCSR(key *ecdsa.PrivateKey) ([]byte, error) {
	if err := checkPublicKey(publicOf(key)); err != nil {
		return nil, fmt.Errorf("new csr: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{}}, key)
	if err != nil {
		return nil, fmt.Errorf("new csr: %w", err)
	}
	return der, nil
}

// ParseCertPEM decodes one or more CERTIFICATE PEM blocks. Any other block
// type, data other than whitespace between or after blocks, or no block at
// all is an error wrapping ErrBadCert.
func ParseCertPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := b
	for {
		if len(bytes.TrimSpace(rest)) == 0 {
			break
		}
		var block *pem.Block
		block, rest = decodePEM(rest)
		if block == nil {
			return nil, fmt.Errorf("parse certificates: %w: data that is not a PEM block", ErrBadCert)
		}
		if block.Type != pemCertificate {
			return nil, fmt.Errorf("parse certificates: %w: PEM block type %q, want %q", ErrBadCert, block.Type, pemCertificate)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificates: %w: block %d: %w", ErrBadCert, len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("parse certificates: %w: no CERTIFICATE block", ErrBadCert)
	}
	return certs, nil
}

// decodePEM is pem.Decode that refuses anything but whitespace before the
// block (pem.Decode skips it silently).
func decodePEM(b []byte) (*pem.Block, []byte) {
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("-----BEGIN ")) {
		return nil, b
	}
	return pem.Decode(b)
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}
