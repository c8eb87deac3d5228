package autolock

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"

	"github.com/holdfast/holdfast/internal/seal"
)

// KeySize is the length in bytes of an unlock key.
const KeySize = 32

const (
	// KeyPrefix starts every unlock key's text form.
	KeyPrefix = "HFKEY-1-"

	keyChecksumSize  = 4
	keyChecksumLabel = "holdfast/unlock key checksum v1"
	kekInfo          = "holdfast/autolock kek v1"
	redactedKey      = "autolock.Key(redacted)"
)

// Key is an unlock key: 32 random bytes shown to the operator and never
// written to disk. Make one with NewKey or ParseKey; the zero Key is not a
// key.
//
// Only an explicit call of String prints the key. fmt verbs (%v, %s, %#v,
// ...), GoString and slog (LogValue) print "autolock.Key(redacted)", so a
// key that slips into a log line or an error message is not revealed.
type Key struct {
	b     [KeySize]byte
	valid bool
}

// NewKey returns a fresh random unlock key from crypto/rand.
func NewKey() Key {
	var k Key
	// crypto/rand.Read never returns an error (Go 1.24+); it crashes the
	// program if the system's randomness source fails.
	_, _ = rand.Read(k.b[:])
	k.valid = true
	return k
}

// ParseKey parses an unlock key in the form String returns, ignoring
// surrounding white space and the case of letters. It returns an error
// wrapping ErrMistyped when the form is right but the checksum fails (a
// typo), and ErrMalformedKey for anything else. Errors never contain s.
func ParseKey(s string) (Key, error) {
	b, err := decodeText(s, KeyPrefix, KeySize+keyChecksumSize, ErrMalformedKey)
	if err != nil {
		if t := strings.TrimSpace(s); len(t) >= len(SharePrefix) && asciiEqualFold(t[:len(SharePrefix)], SharePrefix) {
			return Key{}, fmt.Errorf("%w: this is a share of a key, not a key", ErrMalformedKey)
		}
		return Key{}, err
	}
	sum := keyChecksum(b[:KeySize])
	if subtle.ConstantTimeCompare(sum[:], b[KeySize:]) != 1 {
		return Key{}, fmt.Errorf("%w: the unlock key has a typo", ErrMistyped)
	}
	var k Key
	copy(k.b[:], b)
	k.valid = true
	return k, nil
}

// keyChecksum is the first 4 bytes of
// SHA-256("holdfast/unlock key checksum v1" || key).
func keyChecksum(key []byte) [keyChecksumSize]byte {
	h := sha256.New()
	h.Write([]byte(keyChecksumLabel))
	h.Write(key)
	var sum [keyChecksumSize]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// String returns the key in its text form, "HFKEY-1-" followed by the
// lowercase unpadded base32 of key || checksum. This is the only way the
// key is printed: call it explicitly, and only to show the key to the
// operator. The zero Key prints "autolock.Key(zero)".
func (k Key) String() string {
	if !k.valid {
		return "autolock.Key(zero)"
	}
	sum := keyChecksum(k.b[:])
	payload := make([]byte, 0, KeySize+keyChecksumSize)
	payload = append(payload, k.b[:]...)
	payload = append(payload, sum[:]...)
	return encodeText(KeyPrefix, payload)
}

// Format implements fmt.Formatter so that every fmt verb prints a
// redacted placeholder; only an explicit String call reveals the key.
func (k Key) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redactedKey)) }

// GoString never prints key material.
func (k Key) GoString() string { return redactedKey }

// LogValue implements slog.LogValuer: slog never shows the key.
func (k Key) LogValue() slog.Value { return slog.StringValue(redactedKey) }

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool {
	return k.valid == o.valid && subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// IsZero reports whether k is the zero Key (not made by NewKey or ParseKey).
func (k Key) IsZero() bool { return !k.valid }

// KEK returns the key-encryption key derived from k:
// HKDF-SHA256(ikm = key, salt = none, info = "holdfast/autolock kek v1"),
// 32 bytes. It panics on the zero Key.
func (k Key) KEK() seal.Key {
	k.mustValid()
	b, err := hkdf.Key(sha256.New, k.b[:], nil, kekInfo, seal.KeySize)
	if err != nil {
		panic("autolock: hkdf: " + err.Error()) // unreachable: 32 bytes of HKDF-SHA256
	}
	kek, err := seal.ParseKey(b)
	if err != nil {
		panic("autolock: " + err.Error()) // unreachable: the length is fixed
	}
	clear(b)
	return kek
}

func (k Key) mustValid() {
	if !k.valid {
		panic("autolock: use of the zero Key")
	}
}
