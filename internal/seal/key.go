package seal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// KeySize is the length in bytes of a Key.
const KeySize = 32

// KeyIDSize is the length in bytes of a KeyID.
const KeyIDSize = 8

// keyIDLabel separates key IDs from every other use of a key.
const keyIDLabel = "holdfast/seal key id v1"

// Key is a 256-bit symmetric key. Make one with NewKey or ParseKey; the zero
// Key is not a key and every function that seals with it panics.
type Key struct {
	b     [KeySize]byte
	id    KeyID // derived once: every sealed record names its key
	valid bool
}

// KeyID names a key without revealing it: the first KeyIDSize bytes of
// HMAC-SHA256(key, "holdfast/seal key id v1").
type KeyID [KeyIDSize]byte

// String returns the ID in hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// NewKey returns a fresh random key from crypto/rand.
func NewKey() Key {
	var k Key
	// crypto/rand.Read never returns an error (Go 1.24+); it crashes the
	// program if the system's randomness source fails.
	_, _ = rand.Read(k.b[:])
	k.valid = true
	k.id = deriveID(k.b[:])
	return k
}

// ParseKey returns the key whose bytes are b, which must be exactly KeySize
// bytes long. It copies b.
func ParseKey(b []byte) (Key, error) {
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("%w: %d bytes; want %d", ErrKeySize, len(b), KeySize)
	}
	var k Key
	copy(k.b[:], b)
	k.valid = true
	k.id = deriveID(k.b[:])
	return k, nil
}

// Bytes returns a copy of the key's bytes, for writing it to a key file.
// Never log them.
func (k Key) Bytes() []byte {
	k.mustValid()
	out := make([]byte, KeySize)
	copy(out, k.b[:])
	return out
}

// ID returns the key's stable short identifier.
func (k Key) ID() KeyID {
	k.mustValid()
	return k.id
}

func deriveID(key []byte) KeyID {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(keyIDLabel))
	var id KeyID
	copy(id[:], m.Sum(nil))
	return id
}

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool {
	return k.valid == o.valid && subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// IsZero reports whether k is the zero Key (not made by NewKey or ParseKey).
func (k Key) IsZero() bool { return !k.valid }

// String never prints key material.
func (k Key) String() string {
	if !k.valid {
		return "seal.Key(zero)"
	}
	return "seal.Key(" + k.ID().String() + ")"
}

// GoString never prints key material.
func (k Key) GoString() string { return k.String() }

func (k Key) mustValid() {
	if !k.valid {
		panic("seal: use of the zero Key")
	}
}
