package autolock

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/holdfast/holdfast/internal/seal"
)

// Purpose says what a wrapped key is for; it is bound into the envelope's
// associated data, so an envelope made for one purpose never opens as
// another.
type Purpose string

// The purposes holdfast wraps keys for.
const (
	// PurposeDEK is the data-encryption key file (<data-dir>/keys).
	PurposeDEK Purpose = "dek"
	// PurposeNodeKey is the node's TLS private key (certs/node.key).
	PurposeNodeKey Purpose = "node-key"
)

const (
	wrapMagic   = "HFWRAP"
	wrapVersion = 0x01
	wrapADLabel = "holdfast/autolock wrap v1"
	// wrapHeaderSize is magic || version || KEK ID.
	wrapHeaderSize = len(wrapMagic) + 1 + seal.KeyIDSize
)

// WrapOverhead is how many bytes Wrap adds to a plaintext.
const WrapOverhead = wrapHeaderSize + seal.Overhead

// Wrap seals plaintext (a DEK key file, a TLS private key) under kek, for
// one purpose on one node. The envelope is specified in FORMAT.md:
//
//	"HFWRAP" || version(1) = 0x01 || kek_id(8) || seal.Seal(kek, plaintext, ad)
//
// It panics if kek is the zero seal.Key.
func Wrap(kek seal.Key, purpose Purpose, nodeID string, plaintext []byte) []byte {
	id := kek.ID()
	out := make([]byte, 0, WrapOverhead+len(plaintext))
	out = append(out, wrapMagic...)
	out = append(out, wrapVersion)
	out = append(out, id[:]...)
	return seal.AppendSeal(out, kek, plaintext, wrapAD(wrapVersion, purpose, nodeID, id))
}

// Unwrap opens an envelope made by Wrap with the same kek, purpose and
// node ID. It returns an error wrapping ErrNotWrapped if b is not an
// envelope at all, ErrMalformedEnvelope if its header is damaged or of an
// unknown version, and ErrInvalidKey if it does not open under kek: the
// envelope names another KEK (see KEKID), or it fails authentication (a
// wrong key, another purpose or node, or damaged bytes). It never returns
// partial plaintext. Like Wrap, it panics if kek is the zero seal.Key and
// b has an envelope header.
func Unwrap(kek seal.Key, purpose Purpose, nodeID string, b []byte) ([]byte, error) {
	if !IsWrapped(b) {
		return nil, ErrNotWrapped
	}
	if len(b) < wrapHeaderSize+1 {
		return nil, fmt.Errorf("%w: truncated header", ErrMalformedEnvelope)
	}
	if v := b[len(wrapMagic)]; v != wrapVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformedEnvelope, v)
	}
	if len(b) < WrapOverhead {
		return nil, fmt.Errorf("%w: %d bytes, shorter than any envelope", ErrMalformedEnvelope, len(b))
	}
	var id seal.KeyID
	copy(id[:], b[len(wrapMagic)+1:wrapHeaderSize])
	if want := kek.ID(); id != want {
		return nil, fmt.Errorf("%w: wrapped under KEK %s, not under KEK %s", ErrInvalidKey, id, want)
	}
	pt, err := seal.Open(kek, b[wrapHeaderSize:], wrapAD(wrapVersion, purpose, nodeID, id))
	if err != nil {
		return nil, fmt.Errorf("%w: the envelope does not authenticate under KEK %s (damaged, or wrapped for another node or purpose)", ErrInvalidKey, id)
	}
	return pt, nil
}

// IsWrapped reports whether b starts with the envelope magic, that is,
// whether it was written by Wrap (possibly damaged since).
func IsWrapped(b []byte) bool {
	return bytes.HasPrefix(b, []byte(wrapMagic))
}

// KEKID returns the ID of the KEK an envelope says it is wrapped under,
// and false if b does not have a whole version-1 envelope header. The ID
// is not authenticated until Unwrap succeeds; use it to tell "wrapped
// under an older unlock key" apart from garbage, never to trust b.
func KEKID(b []byte) (seal.KeyID, bool) {
	var id seal.KeyID
	if !IsWrapped(b) || len(b) < WrapOverhead || b[len(wrapMagic)] != wrapVersion {
		return id, false
	}
	copy(id[:], b[len(wrapMagic)+1:wrapHeaderSize])
	return id, true
}

// wrapAD is the envelope's associated data:
//
//	"holdfast/autolock wrap v1" || 0x00 || version
//	|| uint32(len(purpose)) || purpose || uint32(len(node_id)) || node_id
//	|| kek_id
func wrapAD(version byte, purpose Purpose, nodeID string, id seal.KeyID) []byte {
	ad := make([]byte, 0, len(wrapADLabel)+2+4+len(purpose)+4+len(nodeID)+len(id))
	ad = append(ad, wrapADLabel...)
	ad = append(ad, 0, version)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(purpose)))
	ad = append(ad, purpose...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(nodeID)))
	ad = append(ad, nodeID...)
	ad = append(ad, id[:]...)
	return ad
}
