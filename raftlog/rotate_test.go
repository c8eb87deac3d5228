package raftlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/holdfast/holdfast/internal/seal"
)

type rotFixture struct {
	dir, keyFile string
	keys         *Keyring
	old          seal.Key
	store        *Store
	snaps        *SnapshotStore
	rot          Rotator
}

func newRotFixture(t *testing.T) *rotFixture {
	t.Helper()
	f := &rotFixture{dir: t.TempDir()}
	f.keyFile = filepath.Join(f.dir, "keys")
	f.keys, f.old = newKeyring()
	if err := SaveKeyFile(f.keyFile, f.keys.KeyFile()); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	return f
}

func (f *rotFixture) open(t *testing.T) {
	t.Helper()
	opts := testOpts(t, f.keys)
	f.store = openStore(t, f.dir, opts)
	var err error
	if f.snaps, err = NewSnapshotStore(f.dir, 2, opts); err != nil {
		t.Fatal(err)
	}
	f.rot = Rotator{KeyFile: f.keyFile, Store: f.store, Snapshots: f.snaps}
}

// fill writes 600 entries (several re-encryption batches), overwrites and
// deletes some so freed pages hold old ciphertext, and writes 2 snapshots.
func (f *rotFixture) fill(t *testing.T) {
	t.Helper()
	storeN(t, f.store, 1, 600, "first")
	storeN(t, f.store, 550, 600, "overwritten")
	if err := f.store.DeleteRange(1, 20); err != nil {
		t.Fatal(err)
	}
	writeSnapshot(t, f.snaps, 100, bytes.Repeat([]byte("snap-a "), 20000))
	writeSnapshot(t, f.snaps, 200, []byte("snap-b"))
}

func (f *rotFixture) checkEntries(t *testing.T, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := f.store.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if l.Index != i || len(l.Data) == 0 {
			t.Fatalf("GetLog(%d) = %+v", i, l)
		}
	}
}

// oldKeyTraces reports every place in dir's files where a record or
// snapshot header names the old key: the key ID at any byte offset.
func oldKeyTraces(t *testing.T, dir string, old seal.Key) []string {
	t.Helper()
	id := old.ID()
	var out []string
	for path, b := range dirFiles(t, dir) {
		if n := bytes.Count(b, id[:]); n > 0 {
			out = append(out, fmt.Sprintf("%s: %d", filepath.Base(path), n))
		}
	}
	return out
}

func TestRotate(t *testing.T) {
	f := newRotFixture(t)
	f.fill(t)
	if traces := oldKeyTraces(t, f.dir, f.old); len(traces) < 2 {
		t.Fatalf("before rotation, old key traces = %v; want raft.db and snapshots (scanner broken?)", traces)
	}
	if err := f.store.SetUint64(keyCurrentTerm, 5); err != nil {
		t.Fatal(err)
	}
	next := seal.NewKey()
	if err := f.rot.Rotate(t.Context(), next); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	f.checkEntries(t, 21, 600)
	for _, m := range mustList(t, f.snaps) {
		if _, _, err := readSnapshot(f.snaps, m.ID); err != nil {
			t.Fatalf("snapshot %s after rotation: %v", m.ID, err)
		}
	}
	kf, err := LoadKeyFile(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !kf.Current.Equal(next) || len(kf.Previous) != 0 {
		t.Fatalf("key file after rotation: current %v, %d previous; want %v and none", kf.Current, len(kf.Previous), next)
	}
	if _, ok := f.keys.Lookup(f.old.ID()); ok {
		t.Fatal("old key still in the keyring")
	}
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	// No byte sequence anywhere, free pages included, names the old key.
	if traces := oldKeyTraces(t, f.dir, f.old); len(traces) > 0 {
		t.Fatalf("old key ID still on disk: %v", traces)
	}
	// The new key alone opens the log state, the WAL's claim and the
	// stable values, all re-sealed.
	s2 := openStore(t, f.dir, testOpts(t, NewKeyring(next)))
	if term, err := s2.GetUint64(keyCurrentTerm); err != nil || term != 5 {
		t.Fatalf("CurrentTerm under the new key alone: %d, %v; want 5", term, err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	// Try the old key on every record, whatever key ID it names.
	inner, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(f.dir, DBFile)})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	for i := uint64(21); i <= 600; i++ {
		var raw raft.Log
		if err := inner.GetLog(i, &raw); err != nil {
			t.Fatal(err)
		}
		rec, err := parseRecord(raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []seal.KeyID{rec.keyID, f.old.ID()} {
			if _, err := seal.Open(f.old, rec.sealed, entryAD(testCluster, rec.version, id, &raw)); err == nil {
				t.Fatalf("old key opens entry %d", i)
			}
		}
	}
	// Try the old key on every snapshot's stream, under its own header
	// and under the header rewritten to name the old key.
	for _, m := range mustList(t, f.snaps) {
		b, err := os.ReadFile(f.snaps.file(m.ID))
		if err != nil {
			t.Fatal(err)
		}
		h, err := readSnapHeader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		oldHdr := bytes.Clone(h.raw)
		oldID := f.old.ID()
		copy(oldHdr[len(snapMagic)+1:], oldID[:])
		for _, hdr := range [][]byte{h.raw, oldHdr} {
			r, err := seal.NewReader(f.old, bytes.NewReader(b[len(h.raw):]), snapAD(testCluster, hdr))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(r); !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("old key on snapshot %s: err = %v; want ErrOpen", m.ID, err)
			}
		}
	}
}

func mustList(t *testing.T, s *SnapshotStore) []*raft.SnapshotMeta {
	t.Helper()
	m, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRotateInterrupted stops a rotation after the key file names both
// keys; the node restarts from the key file, reads everything, and Resume
// finishes the rotation.
func TestRotateInterrupted(t *testing.T) {
	f := newRotFixture(t)
	f.fill(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	next := seal.NewKey()
	if err := f.rot.Rotate(ctx, next); !errors.Is(err, context.Canceled) {
		t.Fatalf("Rotate err = %v; want context.Canceled", err)
	}
	storeN(t, f.store, 601, 610, "new")
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	// "Crash" and restart from the key file.
	kf, err := LoadKeyFile(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !kf.Current.Equal(next) || len(kf.Previous) != 1 || !kf.Previous[0].Equal(f.old) {
		t.Fatalf("key file mid-rotation = %v %v; want current new, previous old", kf.Current, kf.Previous)
	}
	f.keys = kf.Keyring()
	f.open(t)
	f.checkEntries(t, 21, 610)
	if err := f.rot.Resume(t.Context()); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	f.checkEntries(t, 21, 610)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	if traces := oldKeyTraces(t, f.dir, f.old); len(traces) > 0 {
		t.Fatalf("old key ID still on disk: %v", traces)
	}
}

// TestRotateConcurrentAppends appends and deletes while rotating; every
// entry survives and nothing is left under the old key.
func TestRotateConcurrentAppends(t *testing.T) {
	f := newRotFixture(t)
	f.fill(t)
	var (
		wg      sync.WaitGroup
		started = make(chan struct{})
		done    = make(chan struct{})
		last    uint64
		appErr  error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var once sync.Once
		defer once.Do(func() { close(started) })
		next := uint64(601)
		for batch := 0; ; batch++ {
			if batch == 1 {
				once.Do(func() { close(started) })
			}
			select {
			case <-done:
				if batch > 10 {
					last = next - 1
					return
				}
			default:
			}
			var logs []*raft.Log
			for range 16 {
				logs = append(logs, entry(next, fmt.Sprintf("concurrent-%d", next)))
				next++
			}
			if appErr = f.store.StoreLogs(logs); appErr != nil {
				return
			}
		}
	}()
	<-started
	err := f.rot.Rotate(t.Context(), seal.NewKey())
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if appErr != nil {
		t.Fatalf("StoreLogs during rotation: %v", appErr)
	}
	f.checkEntries(t, 21, last)
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	if traces := oldKeyTraces(t, f.dir, f.old); len(traces) > 0 {
		t.Fatalf("old key ID still on disk: %v", traces)
	}
}

func TestRotatorCheck(t *testing.T) {
	f := newRotFixture(t)
	other, err := NewSnapshotStore(t.TempDir(), 1, testOpts(t, NewKeyring(seal.NewKey())))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    Rotator
	}{
		{"no key file", Rotator{Store: f.store}},
		{"no store", Rotator{KeyFile: f.keyFile}},
		{"different keyrings", Rotator{KeyFile: f.keyFile, Store: f.store, Snapshots: other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.r.Rotate(t.Context(), seal.NewKey()); err == nil {
				t.Fatal("Rotate succeeded")
			}
		})
	}
}
