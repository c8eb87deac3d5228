package raftlog

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
)

// holdFlusher keeps the background flusher (and any drain) from moving
// entries into bolt until the returned func is called, so that what
// StoreLogs wrote stays in the WAL only.
func holdFlusher(t *testing.T, s *Store) (release func()) {
	t.Helper()
	s.flushMu.Lock()
	var once bool
	release = func() {
		if !once {
			once = true
			s.flushMu.Unlock()
		}
	}
	t.Cleanup(release)
	return release
}

// walStore opens a store in a new directory; with hold, its flusher is
// held (holdFlusher), so what StoreLogs writes stays in the WAL only.
func walStore(t *testing.T, hold bool) (*Store, string, *Keyring) {
	t.Helper()
	keys, _ := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	if hold {
		holdFlusher(t, s)
	}
	return s, dir, keys
}

// editFile rewrites the file at p after edit has changed its bytes.
func editFile(t *testing.T, p string, edit func(b []byte)) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edit(b)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashCopy copies the store's files as they are on disk now into a new
// directory: what a node would find after a crash at this point.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{DBFile, WALFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func wantEntries(t *testing.T, s *Store, from, to uint64, prefix string) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != from || last != to {
		t.Fatalf("store holds %d..%d, want %d..%d", first, last, from, to)
	}
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if want := fmt.Sprintf("%s-%d", prefix, i); string(l.Data) != want {
			t.Fatalf("entry %d = %q, want %q", i, l.Data, want)
		}
	}
}

func boltLast(t *testing.T, s *Store) uint64 {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	last, err := s.inner.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// TestWALHoldsEntriesUntilFlushed: StoreLogs returns with the entries in
// the WAL only; they are served from there, survive a crash (replayed
// into bolt on open), and the flusher then moves them into bolt and
// starts the WAL over.
func TestWALHoldsEntriesUntilFlushed(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	release := holdFlusher(t, s)
	storeN(t, s, 1, 40, "a")
	storeN(t, s, 41, 50, "a")
	if got := boltLast(t, s); got != 0 {
		t.Fatalf("bolt holds entries up to %d before any flush", got)
	}
	wantEntries(t, s, 1, 50, "a")

	crashed := crashCopy(t, dir)
	c := openStore(t, crashed, testOpts(t, keys))
	if got := boltLast(t, c); got != 50 {
		t.Fatalf("after the crash bolt holds entries up to %d, want 50 (replayed from the WAL)", got)
	}
	wantEntries(t, c, 1, 50, "a")

	release()
	deadline := time.After(10 * time.Second)
	for boltLast(t, s) != 50 || s.pendingLog(1) != nil {
		select {
		case <-deadline:
			t.Fatalf("the flusher did not move the entries into bolt (bolt at %d)", boltLast(t, s))
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.walMu.Lock()
	off, empty := s.w.off, s.w.empty()
	s.walMu.Unlock()
	if off != walDataStart || !empty {
		t.Fatalf("WAL not started over after the flush: next record at %d", off)
	}
	wantEntries(t, s, 1, 50, "a")
}

// TestWALTornTail: a record cut short by a crash ends the WAL; the
// entries before it are kept. A crash can tear any part of the last
// batch's write, so a damaged record followed by intact records of its
// own batch is torn, not tampered with.
func TestWALTornTail(t *testing.T) {
	s, dir, keys := walStore(t, true)
	storeN(t, s, 1, 5, "a")
	s.walMu.Lock()
	end := s.w.off
	s.walMu.Unlock()
	storeN(t, s, 6, 8, "a")

	for name, damage := range map[string]func(b []byte){
		"cut":     func(b []byte) { clear(b[end+walRecordHeaderSize+3:]) },
		"flipped": func(b []byte) { b[end+walRecordHeaderSize+20] ^= 1 },
	} {
		t.Run(name, func(t *testing.T) {
			crashed := crashCopy(t, dir)
			p := filepath.Join(crashed, WALFile)
			editFile(t, p, damage)
			var logBuf bytes.Buffer
			opts := testOpts(t, keys)
			opts.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
			c := openStore(t, crashed, opts)
			wantEntries(t, c, 1, 5, "a")
			if !strings.Contains(logBuf.String(), "torn record") {
				t.Errorf("no warning about the torn record in the log:\n%s", logBuf.String())
			}
		})
	}
}

// TestWALDamageBeforeIntactRecordsRefused: a damaged record followed by
// intact ones was not torn by a crash; opening fails closed.
func TestWALDamageBeforeIntactRecordsRefused(t *testing.T) {
	s, dir, keys := walStore(t, true)
	storeN(t, s, 1, 1, "a")
	storeN(t, s, 2, 3, "a")
	crashed := crashCopy(t, dir)
	p := filepath.Join(crashed, WALFile)
	editFile(t, p, func(b []byte) { b[walDataStart+walRecordHeaderSize+walEntryFixed+5] ^= 0x40 }) // inside entry 1's record
	before := dirFiles(t, crashed)
	_, err := Open(crashed, testOpts(t, keys))
	var re *RecordError
	if !errors.Is(err, ErrTampered) || !errors.As(err, &re) || re.Path != p {
		t.Fatalf("Open = %v, want a RecordError naming %s wrapping ErrTampered", err, p)
	}
	after := dirFiles(t, crashed)
	if !bytes.Equal(before[p], after[p]) {
		t.Fatal("the refused WAL was changed")
	}
}

// TestWALDeleteRangeThenCrash: entries deleted by raft (a follower's
// conflicting tail) are never replayed, even though their records were in
// the WAL.
func TestWALDeleteRangeThenCrash(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	storeN(t, s, 1, 10, "old")
	if err := s.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	holdFlusher(t, s)
	storeN(t, s, 6, 7, "new")
	c := openStore(t, crashCopy(t, dir), testOpts(t, keys))
	for i := uint64(1); i <= 7; i++ {
		want := fmt.Sprintf("old-%d", i)
		if i > 5 {
			want = fmt.Sprintf("new-%d", i)
		}
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil || string(l.Data) != want {
			t.Fatalf("entry %d = %q, %v; want %s", i, l.Data, err, want)
		}
	}
	if last, _ := c.LastIndex(); last != 7 {
		t.Fatalf("last index %d after the crash, want 7: deleted entries came back", last)
	}
}

// TestWALFullMovesEntriesIntoBolt: a WAL too small for the writes is
// emptied into bolt whenever it fills, and nothing is lost.
func TestWALFullMovesEntriesIntoBolt(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	opts := testOpts(t, keys)
	opts.WALSize = 16 << 10
	s := openStore(t, dir, opts)
	s.pmu.Lock()
	s.flushAfter = time.Hour // only a full WAL moves entries
	s.pmu.Unlock()
	s.walMu.Lock()
	gen := s.w.gen
	s.walMu.Unlock()
	for i := uint64(1); i <= 400; i += 20 {
		storeN(t, s, i, i+19, "a")
	}
	wantEntries(t, s, 1, 400, "a")
	s.walMu.Lock()
	resets := s.w.gen - gen
	s.walMu.Unlock()
	if resets < 2 {
		t.Fatalf("the WAL started over %d times; a 16 KiB WAL cannot hold 20 batches", resets)
	}
	if bl := boltLast(t, s); bl == 0 {
		t.Fatal("nothing reached bolt")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := openStore(t, dir, opts)
	wantEntries(t, c, 1, 400, "a")
}

// TestWALReadOnly: offline tools see the entries still in the WAL and
// change no file.
func TestWALReadOnly(t *testing.T) {
	s, dir, keys := walStore(t, true)
	storeN(t, s, 1, 9, "a")
	crashed := crashCopy(t, dir)
	before := dirFiles(t, crashed)
	ro, err := OpenReadOnly(crashed, testOpts(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	wantEntries(t, ro, 1, 9, "a")
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after := dirFiles(t, crashed)
	for p, b := range before {
		if sha256.Sum256(b) != sha256.Sum256(after[p]) {
			t.Fatalf("%s changed by a read-only open", p)
		}
	}
}

// TestWALHoldsNoPlaintext: what reaches the WAL is sealed.
func TestWALHoldsNoPlaintext(t *testing.T) {
	s, dir, _ := walStore(t, true)
	marker := "wal-plaintext-canary"
	if err := s.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte(marker), Extensions: []byte(marker + "-ext")}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, WALFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(marker)) {
		t.Fatal("plaintext entry data found in the WAL")
	}
	if c, err := readWAL(b, s.openTrailer); err != nil || len(c.logs) != 1 {
		t.Fatalf("the WAL holds %d records (%v), want the entry's", len(c.logs), err)
	}
}

// TestRotationWipesWAL: after a DEK rotation no record sealed under the
// old key is left in the WAL file, even in its unused space.
func TestRotationWipesWAL(t *testing.T) {
	keys, old := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	storeN(t, s, 1, 30, "a")
	oldID := old.ID()
	walBytes := func() []byte {
		b, err := os.ReadFile(filepath.Join(dir, WALFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Contains(walBytes(), oldID[:]) {
		t.Fatal("test setup: the old key's records are not in the WAL")
	}
	r := Rotator{KeyFile: filepath.Join(t.TempDir(), "keys"), Store: s}
	if err := r.Rotate(t.Context(), seal.NewKey()); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(walBytes(), oldID[:]) {
		t.Fatal("a record sealed under the retired key is still in the WAL")
	}
	wantEntries(t, s, 1, 30, "a")
}

// TestWALForgedRecordRefused: the crc only finds torn writes; an entry
// changed in the WAL with its crc fixed up is still refused when read,
// because the entry itself is sealed.
func TestWALForgedRecordRefused(t *testing.T) {
	s, dir, keys := walStore(t, true)
	storeN(t, s, 1, 3, "a")
	crashed := crashCopy(t, dir)
	p := filepath.Join(crashed, WALFile)
	b, _ := os.ReadFile(p)
	wc, err := readWAL(b, s.openTrailer)
	logs := wc.logs
	if err != nil || len(logs) != 3 {
		t.Fatalf("setup: %d records, %v", len(logs), err)
	}
	// Re-encode entry 2 with one ciphertext byte changed and a valid crc.
	off := walDataStart + walRecordHeaderSize + walEntryFixed + len(logs[0].Data)
	gen := wc.gen
	forged := *logs[1]
	forged.Data = bytes.Clone(forged.Data)
	forged.Data[len(forged.Data)-20] ^= 1
	rec := appendWALRecord(nil, gen, &forged, false) // its mark as it was: not its batch's last
	copy(b[off:], rec)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c := openStore(t, crashed, testOpts(t, keys))
	var l raft.Log
	if err := c.GetLog(1, &l); err != nil {
		t.Fatalf("entry 1: %v", err)
	}
	var re *RecordError
	if err := c.GetLog(2, &l); !errors.Is(err, ErrTampered) || !errors.As(err, &re) || re.Index != 2 {
		t.Fatalf("forged entry 2: %v, want a RecordError for entry 2 wrapping ErrTampered", err)
	}
}

// TestWALIndexesWhileFlushing: while the flusher moves entries into bolt
// as fast as it can, FirstIndex and LastIndex never miss an entry that
// StoreLogs has acknowledged.
func TestWALIndexesWhileFlushing(t *testing.T) {
	keys, _ := newKeyring()
	s := openStore(t, t.TempDir(), testOpts(t, keys))
	s.pmu.Lock()
	s.flushAfter = 0
	s.pmu.Unlock()
	var acked atomic.Uint64
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			want := acked.Load()
			last, err := s.LastIndex()
			first, ferr := s.FirstIndex()
			if err != nil || ferr != nil || last < want || (want > 0 && first != 1) {
				errs <- fmt.Errorf("acknowledged up to %d, then first %d (%v) last %d (%v)", want, first, ferr, last, err)
				return
			}
		}
	}()
	for i := uint64(1); i <= 1000; i++ {
		storeN(t, s, i, i, "a")
		acked.Store(i)
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// TestWALLargerThanFirstRead: records that run far into a large file
// (past the 1 MiB an earlier reader read first) are all found after a
// crash, and a torn record far into it still only ends the records.
func TestWALLargerThanFirstRead(t *testing.T) {
	const walFirstRead = 1 << 20
	s, dir, keys := walStore(t, true)
	big := bytes.Repeat([]byte{0x5a}, 100<<10)
	var n uint64
	for range 3 * walFirstRead / len(big) {
		n++
		if err := s.StoreLogs([]*raft.Log{{Index: n, Term: 1, Type: raft.LogCommand, Data: big}}); err != nil {
			t.Fatal(err)
		}
	}
	s.walMu.Lock()
	end := s.w.off
	s.walMu.Unlock()
	if end < 2*walFirstRead {
		t.Fatalf("test setup: the WAL's records end at %d, not past twice the first read", end)
	}
	check := func(dir string, want uint64) {
		t.Helper()
		c := openStore(t, dir, testOpts(t, keys))
		if last, _ := c.LastIndex(); last != want {
			t.Fatalf("after the crash the log ends at %d, want %d", last, want)
		}
		var l raft.Log
		for i := uint64(1); i <= want; i++ {
			if err := c.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, big) {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
	}
	check(crashCopy(t, dir), n)
	torn := crashCopy(t, dir)
	editFile(t, filepath.Join(torn, WALFile), func(b []byte) { b[end-10] ^= 1 })
	check(torn, n-1)
}
