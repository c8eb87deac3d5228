package ca

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
)

const (
	tokenPrefix  = "HFTKN"
	tokenVersion = "1"
	secretBytes  = 32
	digestLen    = 64
)

// Token is a join token: "HFTKN-1-<CADigest>-<Secret>". CADigest pins the
// root (Root.Digest); Secret is 32 random bytes in lowercase base32 without
// padding (52 characters). Build one with NewToken or ParseToken.
type Token struct {
	CADigest string
	Secret   string
}

// NewToken returns a token pinning root with a fresh random secret.
func NewToken(root *Root) (Token, error) {
	if root == nil {
		return Token{}, fmt.Errorf("new token: no root")
	}
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	return Token{CADigest: root.Digest(), Secret: b32.EncodeToString(b[:])}, nil
}

// ParseToken parses a token in exactly the form Token.String produces. Errors
// wrap ErrMalformedToken and say which part is wrong without echoing the
// secret.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 4 {
		return Token{}, fmt.Errorf("%w: %d dash-separated parts, want 4", ErrMalformedToken, len(parts))
	}
	if parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: does not start with %q", ErrMalformedToken, tokenPrefix+"-")
	}
	if parts[1] != tokenVersion {
		return Token{}, fmt.Errorf("%w: unsupported version (want %s)", ErrMalformedToken, tokenVersion)
	}
	if !ValidDigest(parts[2]) {
		return Token{}, fmt.Errorf("%w: CA digest is not %d lowercase hex characters", ErrMalformedToken, digestLen)
	}
	if len(parts[3]) != b32.EncodedLen(secretBytes) {
		return Token{}, fmt.Errorf("%w: secret has %d characters, want %d", ErrMalformedToken, len(parts[3]), b32.EncodedLen(secretBytes))
	}
	if !canonicalB32(parts[3], secretBytes) {
		return Token{}, fmt.Errorf("%w: secret is not lowercase base32", ErrMalformedToken)
	}
	return Token{CADigest: parts[2], Secret: parts[3]}, nil
}

// ValidDigest reports whether s has the form of DigestOf: 64 lowercase hex
// characters.
func ValidDigest(s string) bool {
	if len(s) != digestLen {
		return false
	}
	b, err := hex.DecodeString(s)
	return err == nil && hex.EncodeToString(b) == s
}

// String returns the token in its text form. It contains the secret.
func (t Token) String() string {
	return tokenPrefix + "-" + tokenVersion + "-" + t.CADigest + "-" + t.Secret
}

// Equal reports whether t and u are the same token, in time that depends only
// on their lengths.
func (t Token) Equal(u Token) bool {
	return subtle.ConstantTimeCompare([]byte(t.String()), []byte(u.String())) == 1
}

// LogValue keeps the secret out of logs: only the CA digest is logged.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("ca_digest", t.CADigest), slog.String("secret", "REDACTED"))
}

// GoString keeps the secret out of %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("ca.Token{CADigest:%q, Secret:REDACTED}", t.CADigest)
}
