package overlaykeys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)

func rotate(t *testing.T, k Keyrings, s Subsystem, at time.Time) Rotation {
	t.Helper()
	rot, err := NewRotation(s, k.Ring(s), at, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Apply(rot); err != nil {
		t.Fatalf("apply rotation after %d: %v", rot.After, err)
	}
	return rot
}

func lamports(r *Ring) []uint64 {
	var out []uint64
	for _, k := range r.Keys {
		out = append(out, k.Lamport)
	}
	return out
}

func TestRotationSequence(t *testing.T) {
	k := Keyrings{}
	if due, _ := k.Ring(Gossip).Due(time.Hour, t0); !due {
		t.Fatal("an empty ring is not due")
	}
	rot := rotate(t, k, Gossip, t0)
	if len(rot.Keys) != 2 {
		t.Fatalf("bootstrap rotation made %d keys, want 2", len(rot.Keys))
	}
	ring := k.Ring(Gossip)
	if got := lamports(ring); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("lamports %v", got)
	}
	if p, _ := ring.Primary(); p.Lamport != 1 {
		t.Fatalf("primary of a bootstrapped ring has Lamport %d, want 1 (the newest waits a rotation)", p.Lamport)
	}
	if k.Ring(IPsec) != nil {
		t.Fatal("rotating gossip touched ipsec")
	}
	want := [][]uint64{{1, 2, 3}, {2, 3, 4}, {3, 4, 5}, {4, 5, 6}}
	at := t0
	for i, w := range want {
		at = at.Add(time.Hour)
		if due, next := k.Ring(Gossip).Due(time.Hour, at.Add(-time.Nanosecond)); due || !next.Equal(at) {
			t.Fatalf("rotation %d: due=%v next=%v a nanosecond early", i, due, next)
		}
		if due, _ := k.Ring(Gossip).Due(time.Hour, at); !due {
			t.Fatalf("rotation %d not due at its time", i)
		}
		rotate(t, k, Gossip, at)
		ring := k.Ring(Gossip)
		if got := lamports(ring); !slices.Equal(got, w) {
			t.Fatalf("rotation %d: lamports %v, want %v", i, got, w)
		}
		if p, _ := ring.Primary(); p.Lamport != w[1] {
			t.Fatalf("rotation %d: primary %d, want %d", i, p.Lamport, w[1])
		}
		if !ring.RotatedAt.Equal(at) {
			t.Fatalf("rotation %d: RotatedAt %v", i, ring.RotatedAt)
		}
	}
}

// Nodes that have applied consecutive rotations must hold each other's
// primary key, or gossip between them would fail to decrypt.
func TestNeighbouringRingsShareEachOthersPrimary(t *testing.T) {
	k := Keyrings{}
	var rings []*Ring
	for i := range 8 {
		rotate(t, k, IPsec, t0.Add(time.Duration(i)*time.Minute))
		rings = append(rings, k.Ring(IPsec).Clone())
	}
	holds := func(r *Ring, key Key) bool {
		return slices.ContainsFunc(r.Keys, func(o Key) bool { return o.ID == key.ID && bytes.Equal(o.Material, key.Material) })
	}
	for i := 1; i < len(rings); i++ {
		prev, next := rings[i-1], rings[i]
		pp, _ := prev.Primary()
		np, _ := next.Primary()
		if !holds(next, pp) || !holds(prev, np) {
			t.Fatalf("rotation %d: rings %v and %v do not hold each other's primary", i, lamports(prev), lamports(next))
		}
	}
}

func TestStaleRotationIsRefused(t *testing.T) {
	k := Keyrings{}
	rotate(t, k, Gossip, t0)
	// Two leaders both see the ring at Lamport time 2 and both rotate.
	a, _ := NewRotation(Gossip, k.Ring(Gossip), t0.Add(time.Hour), nil)
	b, _ := NewRotation(Gossip, k.Ring(Gossip), t0.Add(time.Hour), nil)
	if err := k.Apply(a); err != nil {
		t.Fatal(err)
	}
	before := k.Ring(Gossip).Clone()
	if err := k.Apply(b); !errors.Is(err, ErrStale) {
		t.Fatalf("second rotation for the same Lamport time: %v, want ErrStale", err)
	}
	if !k.Ring(Gossip).Equal(before) || !k.Ring(Gossip).RotatedAt.Equal(before.RotatedAt) {
		t.Fatal("a refused rotation changed the ring")
	}
}

func TestMalformedRotationsAreRefused(t *testing.T) {
	k := Keyrings{}
	rotate(t, k, Gossip, t0)
	good := func() Rotation {
		r, err := NewRotation(Gossip, k.Ring(Gossip), t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := map[string]func(*Rotation){
		"unknown subsystem": func(r *Rotation) { r.Subsystem = "wireguard" },
		"short key":         func(r *Rotation) { r.Keys[0].Material = r.Keys[0].Material[:16] },
		"skipped lamport":   func(r *Rotation) { r.Keys[0].Lamport++ },
		"repeated id":       func(r *Rotation) { r.Keys[0].ID = k.Ring(Gossip).Keys[0].ID },
		"empty id":          func(r *Rotation) { r.Keys[0].ID = "" },
		"no keys":           func(r *Rotation) { r.Keys = nil },
		"too many keys": func(r *Rotation) {
			for i := range MaxKeys {
				k := r.Keys[0]
				k.ID += string(rune('a' + i))
				k.Lamport += uint64(i + 1)
				r.Keys = append(r.Keys, k)
			}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			before := k.Clone()
			rot := good()
			mutate(&rot)
			if err := k.Apply(rot); !errors.Is(err, ErrBadRotation) {
				t.Fatalf("got %v, want ErrBadRotation", err)
			}
			if !k.Ring(Gossip).Equal(before.Ring(Gossip)) || k.Ring("wireguard") != nil {
				t.Fatal("a refused rotation changed the keyrings")
			}
		})
	}
}

func TestKeysAreRandomAndIndependent(t *testing.T) {
	k := Keyrings{}
	for range 4 {
		rotate(t, k, Gossip, t0)
		rotate(t, k, IPsec, t0)
	}
	seen := map[string]bool{}
	for _, s := range Subsystems {
		for _, key := range k.Ring(s).Keys {
			if seen[string(key.Material)] || seen[key.ID] {
				t.Fatal("a key or key ID repeats")
			}
			if bytes.Equal(key.Material, make([]byte, KeySize)) {
				t.Fatal("an all-zero key")
			}
			seen[string(key.Material)], seen[key.ID] = true, true
		}
	}
	// Clones share no memory with the original.
	c := k.Clone()
	c.Ring(Gossip).Keys[0].Material[0] ^= 0xff
	if bytes.Equal(c.Ring(Gossip).Keys[0].Material, k.Ring(Gossip).Keys[0].Material) {
		t.Fatal("a clone shares key material with its original")
	}
}

func TestInfoAndViews(t *testing.T) {
	k := Keyrings{}
	rotate(t, k, Gossip, t0)
	rotate(t, k, Gossip, t0.Add(time.Hour))
	rotate(t, k, IPsec, t0)
	info := k.Info()
	if len(info) != 5 {
		t.Fatalf("%d keys listed, want 5", len(info))
	}
	primaries := map[Subsystem]int{}
	for _, ki := range info {
		if ki.Primary {
			primaries[ki.Subsystem]++
		}
	}
	if primaries[Gossip] != 1 || primaries[IPsec] != 1 {
		t.Fatalf("primaries per ring: %v", primaries)
	}
	if info[0].Subsystem != Gossip || info[4].Subsystem != IPsec || info[0].Lamport != 1 {
		t.Fatalf("order: %+v", info)
	}
	keys, primary, ok := k.Ring(Gossip).MemberlistKeys()
	p, _ := k.Ring(Gossip).Primary()
	if !ok || len(keys) != 3 || !bytes.Equal(primary, p.Material) {
		t.Fatal("memberlist view does not match the ring")
	}
	if _, _, ok := (*Ring)(nil).MemberlistKeys(); ok {
		t.Fatal("an empty ring has a memberlist view")
	}
}

func TestPrintingAKeyShowsNoMaterial(t *testing.T) {
	rot, err := NewRotation(IPsec, nil, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := Keyrings{}
	if err := k.Apply(rot); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s", rot, rot, rot, rot.Keys),
		fmt.Sprintf("%v %+v %#v", k, *k.Ring(IPsec), k.Ring(IPsec).Keys[0]),
	} {
		for _, key := range rot.Keys {
			for _, enc := range []string{string(key.Material), hex.EncodeToString(key.Material), base64.StdEncoding.EncodeToString(key.Material), fmt.Sprint(key.Material)} {
				if strings.Contains(s, enc) {
					t.Fatalf("printed key material: %s", s)
				}
			}
		}
		if !strings.Contains(s, rot.Keys[0].ID) {
			t.Fatalf("printing does not even show the key ID: %s", s)
		}
	}
}

// TestPurgeReplacesEveryKey: a purge leaves none of the ring's keys, and
// its primary is new.
func TestPurgeReplacesEveryKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	k := Keyrings{}
	for i := range 4 {
		rot, err := NewRotation(Gossip, k.Ring(Gossip), now.Add(time.Duration(i)*time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Apply(rot); err != nil {
			t.Fatal(err)
		}
	}
	old := k.Ring(Gossip).Clone()
	purge, err := NewPurge(Gossip, old, now.Add(5*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Apply(purge); err != nil {
		t.Fatal(err)
	}
	ring := k.Ring(Gossip)
	if len(ring.Keys) != MaxKeys {
		t.Fatalf("%d keys after a purge; want %d", len(ring.Keys), MaxKeys)
	}
	for _, o := range old.Keys {
		for _, n := range ring.Keys {
			if o.ID == n.ID || string(o.Material) == string(n.Material) {
				t.Fatalf("key %s survived the purge", o.ID)
			}
		}
	}
	if p, _ := ring.Primary(); p.Lamport <= old.Lamport() {
		t.Fatalf("primary after the purge is at Lamport %d, not past the old ring's %d", p.Lamport, old.Lamport())
	}
}
