package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// "Every file flips": a flipped or truncated byte anywhere in the WAL, a
// snapshot file or a stable value is refused with a clear error, never
// served. (raft.db's entries: TestTamperEveryByte.)

// TestWALEveryByteFlips flips, then cuts the file at, every byte of the
// WAL's header, claim, trailers and records (three batches, the node crashed with
// them in the WAL only). Open either refuses with ErrTampered, or serves
// exactly the original entries and loses at most the last batch: a crash
// can cut the last batch's write, so damage to it reads as a torn write
// (the documented window, FORMAT.md section 1.2).
func TestWALEveryByteFlips(t *testing.T) {
	s, dir, keys := walStore(t, true)
	for b := uint64(0); b < 3; b++ {
		storeN(t, s, 2*b+1, 2*b+2, "a")
	}
	s.walMu.Lock()
	end := int(s.w.off)
	s.walMu.Unlock()
	base := crashCopy(t, dir)
	db, err := os.ReadFile(filepath.Join(base, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(base, WALFile))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	try := func(what string, off int, walBytes []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(work, DBFile), db, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, WALFile), walBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Open(work, testOpts(t, keys))
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("%s at %d: Open: %v; want ErrTampered", what, off, err)
			}
			return
		}
		defer c.Close()
		first, _ := c.FirstIndex()
		last, _ := c.LastIndex()
		if first != 1 || last < 4 || last > 6 {
			t.Fatalf("%s at %d: the log holds %d..%d; want 1..4 at least, 1..6 at most", what, off, first, last)
		}
		for i := first; i <= last; i++ {
			var l raft.Log
			if err := c.GetLog(i, &l); err != nil {
				t.Fatalf("%s at %d: entry %d: %v", what, off, i, err)
			}
			if want := entry(i, "a-"+itoa(i)); l.Term != want.Term || !bytes.Equal(l.Data, want.Data) {
				t.Fatalf("%s at %d: served a changed entry %d: %+v", what, off, i, l)
			}
		}
	}
	// Every byte of the header, the claim, each trailer, and each
	// record's framing and fixed fields; every ninth byte of the sealed
	// data, all alike to the crc. Opens sync, so every byte would make a
	// slow test.
	var offsets []int
	for off := range int(walTrailer0Off) + walTrailerSize {
		offsets = append(offsets, off)
	}
	toffs, _ := walTrailerOffs(t, s, orig)
	if len(toffs) != 4 {
		t.Fatalf("test setup: %d trailers, want 4", len(toffs))
	}
	rec := walDataStart
	for _, toff := range toffs[1:] {
		for rec < int(toff) && orig[rec] != 0 {
			n := walRecordHeaderSize + int(binary.BigEndian.Uint32(orig[rec+9:]))
			for off := rec; off < rec+n; off++ {
				if off < rec+walRecordHeaderSize+walEntryFixed || off%9 == 0 || off == rec+n-1 {
					offsets = append(offsets, off)
				}
			}
			rec += n
		}
		for off := int(toff); off < int(toff)+walTrailerSize; off++ {
			offsets = append(offsets, off)
		}
		rec = int(toff) + walTrailerSize
	}
	if rec != end {
		t.Fatalf("test setup: records and trailers end at %d, the WAL at %d", rec, end)
	}
	for i, off := range offsets {
		b := bytes.Clone(orig)
		b[off] ^= 0x10
		try("flip", off, b)
		if i%3 == 0 || off < walDataStart {
			try("cut", off, bytes.Clone(orig[:off]))
		}
	}
}

// TestSnapshotEveryByteFlips flips, then cuts the file at, every byte of
// a small snapshot: Open refuses it every time.
func TestSnapshotEveryByteFlips(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	ss, err := NewSnapshotStore(dir, 2, testOpts(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	id := writeSnapshot(t, ss, 7, []byte("the state of the cluster"))
	path := ss.file(id)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, off int, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, data, err := readSnapshot(ss, id); err == nil {
			t.Fatalf("%s at byte %d of %d: the snapshot opened (%q)", what, off, len(orig), data)
		}
	}
	for off := range orig {
		b := bytes.Clone(orig)
		b[off] ^= 0x10
		check("flip", off, b)
		check("cut", off, bytes.Clone(orig[:off]))
	}
}

// TestStableValueEveryByteFlips flips, then cuts the value at, every byte
// of a sealed stable value and of the sealed log state: the value's read,
// or Open, refuses it.
func TestStableValueEveryByteFlips(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	storeN(t, s, 1, 3, "a")
	if err := s.SetUint64(keyCurrentTerm, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range [][]byte{keyCurrentTerm, stateKey} {
		orig := confValue(t, s.Path(), name)
		for off := range orig {
			for _, v := range [][]byte{
				func() []byte { b := bytes.Clone(orig); b[off] ^= 0x10; return b }(),
				bytes.Clone(orig[:off]),
			} {
				editConf(t, s.Path(), func(b *bbolt.Bucket) { _ = b.Put(name, v) })
				c, err := Open(dir, testOpts(t, keys))
				if err == nil {
					_, err = c.GetUint64(keyCurrentTerm)
					_ = c.Close()
				}
				if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey) {
					t.Fatalf("%s, byte %d changed or cut: %v; want it refused", name, off, err)
				}
			}
		}
		editConf(t, s.Path(), func(b *bbolt.Bucket) { _ = b.Put(name, orig) })
	}
}
