package ca

import "errors"

// Sentinel errors. Functions wrap them with detail; check with errors.Is.
var (
	// ErrMalformedToken means a join token is not in the form Token.String
	// produces. The wrapping error says what is wrong, never the secret.
	ErrMalformedToken = errors.New("malformed join token")
	// ErrBadIdentity means an identity (from a certificate, or given to
	// Issue or NewRoot) is not a valid node ID, role and cluster ID.
	ErrBadIdentity = errors.New("bad node identity")
	// ErrBadCSR means a certificate signing request cannot be parsed, has a
	// bad self-signature or an unsupported key.
	ErrBadCSR = errors.New("bad certificate signing request")
	// ErrBadKey means a private key cannot be parsed or is not ECDSA P-256.
	ErrBadKey = errors.New("bad private key")
	// ErrBadCert means PEM or certificate data cannot be parsed.
	ErrBadCert = errors.New("bad certificate")
	// ErrNotCA means a certificate given as a root is not a CA certificate.
	ErrNotCA = errors.New("not a CA certificate")
	// ErrKeyMismatch means a private key does not belong to a certificate.
	ErrKeyMismatch = errors.New("private key does not match certificate")
	// ErrUntrusted means a certificate does not verify: no chain to a
	// trusted root, not valid at the time given, or wrong key usage.
	ErrUntrusted = errors.New("certificate not trusted")
)
