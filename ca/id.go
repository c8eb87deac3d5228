package ca

import (
	"crypto/rand"
	"encoding/base32"
)

// b32 is lowercase RFC 4648 base32 without padding, used for IDs and token
// secrets.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const (
	idBytes = 16
	// IDLen is the length of an ID as returned by NewID.
	IDLen = 26
)

// NewID returns a random ID for a node or a cluster: 16 bytes from
// crypto/rand in lowercase base32 without padding (26 characters).
func NewID() string {
	var b [idBytes]byte
	rand.Read(b[:]) // never returns an error; crashes the program if the OS fails
	return b32.EncodeToString(b[:])
}

// ValidID reports whether s is an ID in the form NewID produces.
func ValidID(s string) bool {
	return canonicalB32(s, idBytes)
}

// canonicalB32 reports whether s is the canonical encoding of exactly n bytes
// in b32: right length, right alphabet, unused trailing bits zero.
func canonicalB32(s string, n int) bool {
	if len(s) != b32.EncodedLen(n) {
		return false
	}
	b, err := b32.DecodeString(s)
	if err != nil || len(b) != n {
		return false
	}
	return b32.EncodeToString(b) == s
}
