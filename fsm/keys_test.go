package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/holdfast/holdfast/overlaykeys"
)

func rotation(t *testing.T, f *FSM, s overlaykeys.Subsystem) *KeysRotate {
	t.Helper()
	var ring *overlaykeys.Ring
	f.Read(func(st *State, _ uint64) { ring = st.Keys.Ring(s).Clone() })
	rot, err := overlaykeys.NewRotation(s, ring, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &KeysRotate{rot}
}

func TestKeysRotateThroughTheFSM(t *testing.T) {
	f := New(nil)
	if errs := applyAll(t, f, &KeysRotate{}); !errors.Is(errs[0], ErrNotInitialized) {
		t.Fatalf("rotation before init: %v", errs[0])
	}
	applyAll(t, f, initCmd())
	first := rotation(t, f, overlaykeys.Gossip)
	if errs := applyAll(t, f, first, rotation(t, f, overlaykeys.IPsec)); errs[0] != nil || errs[1] != nil {
		t.Fatalf("bootstrap rotations: %v", errs)
	}
	// A second leader's rotation made for the same Lamport time as one
	// already applied is refused, on every replica alike.
	a, b := rotation(t, f, overlaykeys.Gossip), rotation(t, f, overlaykeys.Gossip)
	errs := applyAll(t, f, a, b)
	if errs[0] != nil || !errors.Is(errs[1], overlaykeys.ErrStale) {
		t.Fatalf("two rotations for one Lamport time: %v", errs)
	}
	f.Read(func(s *State, _ uint64) {
		if got := s.Keys.Ring(overlaykeys.Gossip).Lamport(); got != 3 {
			t.Fatalf("gossip ring at Lamport %d, want 3", got)
		}
	})

	// The keyrings survive a snapshot.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	g.Read(func(s *State, _ uint64) {
		f.Read(func(want *State, _ uint64) {
			for _, sub := range overlaykeys.Subsystems {
				got, w := s.Keys.Ring(sub), want.Keys.Ring(sub)
				if !got.Equal(w) || !bytes.Equal(got.Keys[0].Material, w.Keys[0].Material) || !got.RotatedAt.Equal(w.RotatedAt) {
					t.Fatalf("%s ring differs after restore", sub)
				}
			}
		})
	})
}

func TestNodeUpdateRecordsGossipAddr(t *testing.T) {
	f := New(nil)
	errs := applyAll(t, f, initCmd(), &NodeUpdate{ID: "n1", GossipAddr: "127.0.0.1:4243"}, &NodeUpdate{ID: "n1", CertExpiresAt: t0.Add(time.Hour)})
	if errs[1] != nil || errs[2] != nil {
		t.Fatal(errs)
	}
	f.Read(func(s *State, _ uint64) {
		if got := s.Nodes["n1"].GossipAddr; got != "127.0.0.1:4243" {
			t.Fatalf("gossip addr %q after two updates", got)
		}
	})
}
