package seal

import (
	"crypto/rand"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors returned by this package. Check them with errors.Is.
var (
	// ErrOpen means a sealed message or stream chunk did not authenticate:
	// wrong key, wrong associated data, or tampered bytes. Nothing of its
	// plaintext is returned.
	ErrOpen = errors.New("seal: message authentication failed")
	// ErrKeySize means ParseKey was given the wrong number of bytes.
	ErrKeySize = errors.New("seal: wrong key size")
	// ErrTruncated means a stream ended before its last chunk.
	ErrTruncated = errors.New("seal: stream truncated")
	// ErrTrailingData means bytes follow a stream's last chunk.
	ErrTrailingData = errors.New("seal: trailing data after last chunk")
	// ErrHeader means a stream header is missing or has an unknown version.
	ErrHeader = errors.New("seal: bad stream header")
)

// NonceSize is the length of the random nonce that starts every sealed message.
const NonceSize = chacha20poly1305.NonceSizeX

// Overhead is how many bytes Seal adds to a plaintext: nonce and tag.
const Overhead = NonceSize + chacha20poly1305.Overhead

// Seal encrypts and authenticates plaintext and authenticates ad under k
// with XChaCha20-Poly1305 and a fresh random 192-bit nonce. The result is
// nonce || ciphertext || tag, len(plaintext)+Overhead bytes. ad is not
// included in the result; Open must be given the same ad.
func Seal(k Key, plaintext, ad []byte) []byte {
	return AppendSeal(nil, k, plaintext, ad)
}

// AppendSeal is Seal appending to dst, which must not overlap plaintext.
func AppendSeal(dst []byte, k Key, plaintext, ad []byte) []byte {
	a := newX(k)
	n := len(dst)
	dst = grow(dst, Overhead+len(plaintext))
	nonce := dst[n : n+NonceSize]
	_, _ = rand.Read(nonce)
	return a.Seal(dst[:n+NonceSize], nonce, plaintext, ad)
}

// Open authenticates and decrypts a message made by Seal with the same key
// and ad. On any failure it returns nil and an error wrapping ErrOpen.
func Open(k Key, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrOpen
	}
	a := newX(k)
	pt, err := a.Open(nil, sealed[:NonceSize], sealed[NonceSize:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func newX(k Key) interface {
	Seal(dst, nonce, plaintext, ad []byte) []byte
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
} {
	k.mustValid()
	a, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		panic("seal: " + err.Error()) // unreachable: the key length is fixed
	}
	return a
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}
