package overlaykeys

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Subsystem names a keyring.
type Subsystem string

// The two subsystems.
const (
	Gossip Subsystem = "gossip"
	IPsec  Subsystem = "ipsec"
)

// Subsystems lists every subsystem, in a fixed order.
var Subsystems = []Subsystem{Gossip, IPsec}

// Valid reports whether s is a known subsystem.
func (s Subsystem) Valid() bool { return s == Gossip || s == IPsec }

const (
	// KeySize is the size of every key: AES-256 for memberlist and for
	// an IPsec AES-GCM SA.
	KeySize = 32
	// MaxKeys is how many keys a ring keeps.
	MaxKeys = 3
	// bootstrapKeys is how many keys an empty ring starts with, so that
	// it has a primary and a next key from the start.
	bootstrapKeys = 2
)

// Errors from Apply.
var (
	// ErrStale means the ring has moved past the rotation's After: another
	// leader rotated first.
	ErrStale = errors.New("stale key rotation: the keyring has already moved on")
	// ErrBadRotation is a malformed rotation.
	ErrBadRotation = errors.New("malformed key rotation")
)

// Key is one data-plane key.
type Key struct {
	ID        string    `json:"id"`
	Material  []byte    `json:"material"`
	Lamport   uint64    `json:"lamport"`
	CreatedAt time.Time `json:"created_at"`
}

// Ring is one subsystem's keys, oldest first, and when it last rotated.
type Ring struct {
	Keys      []Key     `json:"keys"`
	RotatedAt time.Time `json:"rotated_at"`
}

// Keyrings is the replicated part of the state this package owns.
type Keyrings map[Subsystem]*Ring

// Ring returns the subsystem's ring, nil when it has none yet.
func (k Keyrings) Ring(s Subsystem) *Ring {
	if k == nil {
		return nil
	}
	return k[s]
}

// Clone returns a deep copy.
func (k Keyrings) Clone() Keyrings {
	if k == nil {
		return nil
	}
	out := make(Keyrings, len(k))
	for s, r := range k {
		out[s] = r.Clone()
	}
	return out
}

// Clone returns a deep copy of r (nil for nil).
func (r *Ring) Clone() *Ring {
	if r == nil {
		return nil
	}
	out := &Ring{RotatedAt: r.RotatedAt, Keys: make([]Key, len(r.Keys))}
	for i, k := range r.Keys {
		k.Material = bytes.Clone(k.Material)
		out.Keys[i] = k
	}
	return out
}

// Lamport returns the ring's clock: its newest key's Lamport time, 0 for an
// empty or nil ring.
func (r *Ring) Lamport() uint64 {
	if r == nil || len(r.Keys) == 0 {
		return 0
	}
	return r.Keys[len(r.Keys)-1].Lamport
}

// Primary returns the key traffic is encrypted with: the second newest,
// or the only one.
func (r *Ring) Primary() (Key, bool) {
	switch {
	case r == nil || len(r.Keys) == 0:
		return Key{}, false
	case len(r.Keys) == 1:
		return r.Keys[0], true
	default:
		return r.Keys[len(r.Keys)-2], true
	}
}

// Due reports whether a ring should rotate at now with the given interval,
// and when it will be due otherwise. An empty ring is due at once.
func (r *Ring) Due(interval time.Duration, now time.Time) (bool, time.Time) {
	if r == nil || len(r.Keys) == 0 {
		return true, now
	}
	next := r.RotatedAt.Add(interval)
	return !now.Before(next), next
}

// Rotation is the replicated command that rotates one ring.
type Rotation struct {
	Subsystem Subsystem `json:"subsystem"`
	// After is the ring's Lamport time the rotation was made for.
	After uint64 `json:"after"`
	// Keys are the new keys, Lamport times After+1, After+2, …
	Keys []Key     `json:"keys"`
	At   time.Time `json:"at"`
}

// NewRotation makes the rotation that follows ring (nil when the
// subsystem has none yet): one new key, or two for an empty ring, from
// random, created at now.
func NewRotation(s Subsystem, ring *Ring, now time.Time, random io.Reader) (Rotation, error) {
	n := 1
	if ring == nil || len(ring.Keys) == 0 {
		n = bootstrapKeys
	}
	return newRotation(s, ring, n, now, random)
}

// NewPurge makes the rotation that replaces every key of ring at once:
// MaxKeys new keys, so that applying it leaves none of the old ones, and
// the primary is new. The leader makes one for each subsystem when a node
// is removed: the keys it held then open nothing that is sent afterwards.
// Nodes that have not yet received the new keys cannot talk to those that
// have until they do (a worker gets them on its next poll), so a purge
// costs a moment of gossip; ordinary rotations never do.
func NewPurge(s Subsystem, ring *Ring, now time.Time, random io.Reader) (Rotation, error) {
	return newRotation(s, ring, MaxKeys, now, random)
}

func newRotation(s Subsystem, ring *Ring, n int, now time.Time, random io.Reader) (Rotation, error) {
	if !s.Valid() {
		return Rotation{}, fmt.Errorf("%w: unknown subsystem %q", ErrBadRotation, s)
	}
	if random == nil {
		random = rand.Reader
	}
	rot := Rotation{Subsystem: s, After: ring.Lamport(), At: now}
	for i := range n {
		k := Key{Material: make([]byte, KeySize), Lamport: rot.After + uint64(i) + 1, CreatedAt: now}
		if _, err := io.ReadFull(random, k.Material); err != nil {
			return Rotation{}, fmt.Errorf("generate a %s key: %w", s, err)
		}
		id := make([]byte, 8)
		if _, err := io.ReadFull(random, id); err != nil {
			return Rotation{}, fmt.Errorf("generate a %s key ID: %w", s, err)
		}
		k.ID = hex.EncodeToString(id)
		rot.Keys = append(rot.Keys, k)
	}
	return rot, nil
}

// Apply rotates the named ring. It is deterministic and leaves k unchanged
// when it returns an error.
func (k Keyrings) Apply(rot Rotation) error {
	if !rot.Subsystem.Valid() {
		return fmt.Errorf("%w: unknown subsystem %q", ErrBadRotation, rot.Subsystem)
	}
	ring := k[rot.Subsystem]
	if ring.Lamport() != rot.After {
		return fmt.Errorf("%w (%s at Lamport time %d, rotation made for %d)", ErrStale, rot.Subsystem, ring.Lamport(), rot.After)
	}
	if len(rot.Keys) == 0 || len(rot.Keys) > MaxKeys {
		return fmt.Errorf("%w: %d keys", ErrBadRotation, len(rot.Keys))
	}
	next := ring.Clone()
	if next == nil {
		next = &Ring{}
	}
	for i, key := range rot.Keys {
		switch {
		case len(key.Material) != KeySize:
			return fmt.Errorf("%w: key of %d bytes", ErrBadRotation, len(key.Material))
		case key.Lamport != rot.After+uint64(i)+1:
			return fmt.Errorf("%w: Lamport time %d after %d", ErrBadRotation, key.Lamport, rot.After+uint64(i))
		case key.ID == "" || slices.ContainsFunc(next.Keys, func(o Key) bool { return o.ID == key.ID }):
			return fmt.Errorf("%w: missing or repeated key ID", ErrBadRotation)
		}
		key.Material = bytes.Clone(key.Material)
		next.Keys = append(next.Keys, key)
	}
	if len(next.Keys) > MaxKeys {
		next.Keys = slices.Delete(next.Keys, 0, len(next.Keys)-MaxKeys)
	}
	next.RotatedAt = rot.At
	k[rot.Subsystem] = next
	return nil
}

// KeyInfo is what may be shown about a key: never its material.
type KeyInfo struct {
	Subsystem Subsystem
	ID        string
	Lamport   uint64
	CreatedAt time.Time
	Primary   bool
}

// Info lists the keys of every ring, metadata only, by subsystem and then
// Lamport time.
func (k Keyrings) Info() []KeyInfo {
	var out []KeyInfo
	for _, s := range Subsystems {
		ring := k.Ring(s)
		if ring == nil {
			continue
		}
		primary, _ := ring.Primary()
		for _, key := range ring.Keys {
			out = append(out, KeyInfo{Subsystem: s, ID: key.ID, Lamport: key.Lamport, CreatedAt: key.CreatedAt, Primary: key.ID == primary.ID})
		}
	}
	return out
}

// MemberlistKeys returns the ring as memberlist wants it: every key, and
// the primary. ok is false for an empty ring.
func (r *Ring) MemberlistKeys() (keys [][]byte, primary []byte, ok bool) {
	p, ok := r.Primary()
	if !ok {
		return nil, nil, false
	}
	for _, k := range r.Keys {
		keys = append(keys, bytes.Clone(k.Material))
	}
	return keys, bytes.Clone(p.Material), true
}

// Equal reports whether two rings hold the same keys (by ID and Lamport
// time; material is fixed by the ID) and the same primary.
func (r *Ring) Equal(o *Ring) bool {
	if r == nil || o == nil {
		return r == o
	}
	return slices.EqualFunc(r.Keys, o.Keys, func(a, b Key) bool { return a.ID == b.ID && a.Lamport == b.Lamport })
}

// String and GoString print a key without its material, so a key that
// reaches a log line or an error by accident shows nothing secret.
func (k Key) String() string {
	return fmt.Sprintf("key %s (Lamport %d, created %s)", k.ID, k.Lamport, k.CreatedAt.Format(time.RFC3339))
}

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }
