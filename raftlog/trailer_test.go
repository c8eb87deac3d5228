package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// TestWALChainProblem: the trailer patterns a write and a power cut can
// leave are accepted, and nothing else.
func TestWALChainProblem(t *testing.T) {
	const O, F, C = trailerOpen, trailerFollowed, trailerConfirmed
	for _, tc := range []struct {
		states []walTrailerState
		ok     bool
	}{
		{nil, false}, // T_0 does not authenticate
		{[]walTrailerState{O}, true},
		{[]walTrailerState{F}, true}, // batch 1 torn, T_0 new
		{[]walTrailerState{C}, false},
		{[]walTrailerState{O, O}, true}, // batch 1 whole, T_0 old
		{[]walTrailerState{F, O}, true},
		{[]walTrailerState{F, F}, true},  // batch 2 torn, T_1 new, T_0 old
		{[]walTrailerState{C, F}, true},  // batch 2 torn, both new
		{[]walTrailerState{C, O}, true},  // batch 2 torn, T_0 new, T_1 old
		{[]walTrailerState{C, C}, false}, // two batches cut
		{[]walTrailerState{O, F}, false},
		{[]walTrailerState{C, F, O}, true},
		{[]walTrailerState{F, F, O}, true}, // batch 3 whole, T_0 old
		{[]walTrailerState{F, O, O}, true}, // batch 3 whole, T_0 and T_1 old
		{[]walTrailerState{C, O, O}, true},
		{[]walTrailerState{C, C, F}, true}, // batch 4 torn
		{[]walTrailerState{C, C, O}, true},
		{[]walTrailerState{F, C, F}, false},
		{[]walTrailerState{C, C, C}, false},
		{[]walTrailerState{O, O, O}, false},
		{[]walTrailerState{C, F, F}, true}, // batch 3 torn, T_2 new, T_1 old
		{[]walTrailerState{F, F, F}, false},
		{[]walTrailerState{C, C, F, O}, true},
		{[]walTrailerState{C, F, F, O}, true},
		{[]walTrailerState{F, C, F, O}, false}, // an earlier trailer not Confirmed
		{[]walTrailerState{C, C, C, C}, false},
		{[]walTrailerState{C, C, C, F}, true},
		{[]walTrailerState{C, C, C, O}, true},
		{[]walTrailerState{C, O, C, F}, false},
	} {
		ts := make([]walTrailer, len(tc.states))
		for i, s := range tc.states {
			ts[i] = walTrailer{last: uint64(i), state: s}
		}
		if p := walChainProblem(ts); (p == "") != tc.ok {
			t.Errorf("trailers %v: problem %q; want ok = %v", tc.states, p, tc.ok)
		}
	}
}

// trailerStore opens a store whose flusher is held, and stores batches
// of per entries with data of size bytes, so they stay in the WAL.
func trailerStore(t *testing.T, batches, per, size int) (*Store, string, *Keyring) {
	t.Helper()
	s, dir, keys := walStore(t, true)
	for b := range batches {
		storeSized(t, s, uint64(b*per+1), uint64((b+1)*per), size)
	}
	return s, dir, keys
}

// sizedData is entry i's data in storeSized: size bytes, i's own.
func sizedData(i uint64, size int) []byte {
	d := bytes.Repeat([]byte{byte(i)}, size)
	copy(d, fmt.Sprintf("e-%d-", i))
	return d
}

func storeSized(t *testing.T, s *Store, from, to uint64, size int) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1 + i/10, Type: raft.LogCommand, Data: sizedData(i, size)})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

// wantSized checks that the store holds entries 1..last as storeSized
// wrote them, with last within lo..hi.
func wantSized(t *testing.T, s *Store, lo, hi uint64, size int, what string) {
	t.Helper()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last == 0 && lo == 0 {
		return
	}
	if first != 1 || last < lo || last > hi {
		t.Fatalf("%s: the log holds %d..%d; want 1..%d at least, 1..%d at most", what, first, last, lo, hi)
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("%s: entry %d: %v", what, i, err)
		}
		if !bytes.Equal(l.Data, sizedData(i, size)) || l.Term != 1+i/10 {
			t.Fatalf("%s: entry %d changed", what, i)
		}
	}
}

func readWALBytes(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, WALFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openImage opens a copy of dir's raft.db with wal as its WAL.
func openImage(t *testing.T, dir string, wal []byte, keys *Keyring) (*Store, string, error) {
	t.Helper()
	work := t.TempDir()
	db, err := os.ReadFile(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, DBFile), db, 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(work, WALFile)
	if err := os.WriteFile(p, wal, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(work, testOpts(t, keys))
	if err == nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, p, err
}

// tornImages returns the files a power cut during the write that took
// the file from old to now can leave: each 512-byte sector old or new.
// Every combination of the sectors that changed, if they are few;
// otherwise every combination of those holding a trailer, each with a
// set of patterns for the others.
func tornImages(old, now []byte, trailers []int64) [][]byte {
	if len(old) < len(now) {
		old = append(bytes.Clone(old), make([]byte, len(now)-len(old))...)
	}
	var changed, marked, rest []int
	isTrailer := func(sec int) bool {
		for _, off := range trailers {
			if int(off)/walSector == sec {
				return true
			}
		}
		return false
	}
	for sec := 0; sec*walSector < len(now); sec++ {
		lo, hi := sec*walSector, min((sec+1)*walSector, len(now))
		if bytes.Equal(old[lo:hi], now[lo:hi]) {
			continue
		}
		changed = append(changed, sec)
		if isTrailer(sec) {
			marked = append(marked, sec)
		} else {
			rest = append(rest, sec)
		}
	}
	compose := func(newSecs map[int]bool) []byte {
		b := bytes.Clone(old[:len(now)])
		for sec := range newSecs {
			lo, hi := sec*walSector, min((sec+1)*walSector, len(now))
			copy(b[lo:hi], now[lo:hi])
		}
		return b
	}
	var out [][]byte
	if len(changed) <= 10 {
		for mask := 0; mask < 1<<len(changed); mask++ {
			set := map[int]bool{}
			for i, sec := range changed {
				if mask&(1<<i) != 0 {
					set[sec] = true
				}
			}
			out = append(out, compose(set))
		}
		return out
	}
	n := len(rest)
	patterns := []func(i int) bool{
		func(int) bool { return false },
		func(int) bool { return true },
		func(i int) bool { return i < n/2 },
		func(i int) bool { return i >= n/2 },
		func(i int) bool { return i%2 == 0 },
		func(i int) bool { return i != 0 },
		func(i int) bool { return i != n/2 },
		func(i int) bool { return i != n-1 },
	}
	for mask := 0; mask < 1<<len(marked); mask++ {
		for _, p := range patterns {
			set := map[int]bool{}
			for i, sec := range marked {
				if mask&(1<<i) != 0 {
					set[sec] = true
				}
			}
			for i, sec := range rest {
				if p(i) {
					set[sec] = true
				}
			}
			out = append(out, compose(set))
		}
	}
	return out
}

// TestWALTornWriteOpens enumerates what a power cut during the write of
// batch n+1 can leave (each sector the write changes old or new: the
// trailers it rewrites, the new records, the new trailer), for small
// batches (several trailers in one sector), 1 KiB ones (records across
// sectors) and large ones (past walRewriteMax: the oldest trailer is
// written as a region of its own). Every one opens, with every
// acknowledged entry and at most the batch being written besides.
func TestWALTornWriteOpens(t *testing.T) {
	for _, tc := range []struct {
		name      string
		per, size int
		upTo      int // batches already acknowledged: 0..upTo
	}{
		{"small", 1, 40, 4},
		{"1KiB", 1, 1 << 10, 4},
		{"two per batch", 2, 700, 3},
		{"large", 1, walRewriteMax + 4<<10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir, keys := walStore(t, true)
			for n := 0; n <= tc.upTo; n++ {
				old := readWALBytes(t, dir)
				storeSized(t, s, uint64(n*tc.per+1), uint64((n+1)*tc.per), tc.size)
				now := readWALBytes(t, dir)
				offs, _ := walTrailerOffs(t, s, now)
				images := tornImages(old, now, offs[max(0, len(offs)-3):])
				if len(images) < 2 {
					t.Fatalf("batch %d: only %d torn images", n+1, len(images))
				}
				for i, img := range images {
					c, _, err := openImage(t, dir, img, keys)
					what := fmt.Sprintf("batch %d, torn image %d of %d", n+1, i, len(images))
					if err != nil {
						t.Fatalf("%s: Open: %v", what, err)
					}
					wantSized(t, c, uint64(n*tc.per), uint64((n+1)*tc.per), tc.size, what)
					if err := c.Close(); err != nil {
						t.Fatal(err)
					}
				}
				// The write undone as a whole opens too, and so does
				// the write done.
				for _, img := range [][]byte{old, now} {
					c, _, err := openImage(t, dir, img, keys)
					if err != nil {
						t.Fatalf("batch %d: Open: %v", n+1, err)
					}
					_ = c.Close()
				}
			}
		})
	}
}

// TestWALTrailerStates: after each batch, the trailers read Confirmed up
// to T_{n-2}, then Followed and Open, for small batches (one contiguous
// write) and large ones (the oldest trailer written on its own).
func TestWALTrailerStates(t *testing.T) {
	for _, size := range []int{100, walRewriteMax + 1} {
		s, dir, _ := walStore(t, true)
		for n := 1; n <= 5; n++ {
			storeSized(t, s, uint64(n), uint64(n), size)
			_, ts := walTrailerOffs(t, s, readWALBytes(t, dir))
			if len(ts) != n+1 {
				t.Fatalf("size %d, %d batches: %d trailers", size, n, len(ts))
			}
			for k, tr := range ts {
				want := trailerConfirmed
				switch k {
				case n:
					want = trailerOpen
				case n - 1:
					want = trailerFollowed
				}
				if tr.state != want || (k > 0 && tr.last != uint64(k)) {
					t.Fatalf("size %d, %d batches: T_%d = %v (entry %d); want %v (entry %d)", size, n, k, tr.state, tr.last, want, k)
				}
			}
		}
	}
}

// TestWALTailCutRefused: a WAL cut back by its last acknowledged batch
// opens without it (the one-batch window, docs/DESIGN-NOTES.md); cut by
// two batches or more (all of them included), zeroed or truncated, it is
// refused naming the file, by Open and by the read-only open.
func TestWALTailCutRefused(t *testing.T) {
	const batches, per = 5, 2
	s, dir, keys := trailerStore(t, batches, per, 50)
	orig := readWALBytes(t, dir)
	offs, _ := walTrailerOffs(t, s, orig)
	for cut := 1; cut <= batches; cut++ {
		from := offs[batches-cut] + walTrailerSize // where batch batches-cut+1 starts
		for _, how := range []string{"zeroed", "truncated"} {
			t.Run(fmt.Sprintf("%d batches %s", cut, how), func(t *testing.T) {
				b := bytes.Clone(orig)
				if how == "zeroed" {
					clear(b[from:])
				} else {
					b = b[:from]
				}
				c, p, err := openImage(t, dir, b, keys)
				if cut == 1 {
					if err != nil {
						t.Fatalf("Open: %v; want the WAL without its last batch", err)
					}
					left := uint64((batches - 1) * per)
					wantSized(t, c, left, left, 50, "cut by one batch")
					return
				}
				wantRolledBack(t, err, p)
				_, err = OpenReadOnly(filepath.Dir(p), testOpts(t, keys))
				wantRolledBack(t, err, p)
			})
		}
	}
}

// TestWALTrailerTamperingRefused: a trailer is bound to its generation,
// its batch and its offset, and its state is sealed: one edited (a
// Confirmed trailer turned Followed), moved to another batch, or copied
// from another generation at the same offset does not authenticate,
// and the batches after it are then not the WAL's, which the trailer
// before it says were made durable. A batch cut out of the middle is
// refused too.
func TestWALTrailerTamperingRefused(t *testing.T) {
	s, dir, keys := walStore(t, true)
	for n := uint64(1); n <= 4; n++ {
		storeN(t, s, n, n, "a")
	}
	genA := readWALBytes(t, dir)
	offs, ts := walTrailerOffs(t, s, genA)
	if ts[1].state != trailerConfirmed {
		t.Fatalf("test setup: T_1 is %v", ts[1].state)
	}
	// The same batches again in the next generation, at the same offsets.
	s.flushMu.Unlock()
	if err := s.flushPending(); err != nil {
		t.Fatal(err)
	}
	s.flushMu.Lock() // released by walStore's cleanup
	for n := uint64(5); n <= 8; n++ {
		storeN(t, s, n, n, "a")
	}
	genB := readWALBytes(t, dir)
	offsB, _ := walTrailerOffs(t, s, genB)
	if !slicesEqual(offs, offsB) || bytes.Equal(genA[:walHeaderSize], genB[:walHeaderSize]) {
		t.Fatalf("test setup: generations at %v and %v", offs, offsB)
	}
	stateByte := 1 + 8 + 24 + 16 // in the ciphertext
	for _, tc := range []struct {
		name string
		edit func(b []byte)
	}{
		{"confirmed turned followed", func(b []byte) { b[offsB[1]+int64(stateByte)] ^= byte(trailerConfirmed ^ trailerFollowed) }},
		{"trailer moved from another batch", func(b []byte) {
			copy(b[offsB[1]:offsB[1]+walTrailerSize], b[offsB[2]:offsB[2]+walTrailerSize])
		}},
		{"trailer from another generation", func(b []byte) {
			copy(b[offsB[2]:offsB[2]+walTrailerSize], genA[offs[2]:offs[2]+walTrailerSize])
		}},
		{"T_0 from another generation", func(b []byte) {
			copy(b[walTrailer0Off:walTrailer0Off+walTrailerSize], genA[walTrailer0Off:walTrailer0Off+walTrailerSize])
		}},
		{"middle batch zeroed", func(b []byte) { clear(b[offsB[1]+walTrailerSize : offsB[2]+walTrailerSize]) }},
		{"middle batch cut out", func(b []byte) {
			rest := bytes.Clone(b[offsB[2]+walTrailerSize:])
			n := copy(b[offsB[1]+walTrailerSize:], rest)
			clear(b[int(offsB[1])+walTrailerSize+n:])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(genB)
			tc.edit(b)
			_, p, err := openImage(t, dir, b, keys)
			if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), p) {
				t.Fatalf("Open: %v; want ErrTampered naming %s", err, p)
			}
		})
	}
	// Unedited, both generations open (the first one's entries are in
	// raft.db by now).
	for i, b := range [][]byte{genA, genB} {
		c, _, err := openImage(t, dir, b, keys)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		wantEntries(t, c, 1, uint64(4+4*i), "a")
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWALVersion2StillOpens: a version 2 WAL (the previous release's,
// its claim rewritten with every batch) holding batches a crash left
// opens with its entries, keeps its own rollback check (cut by more
// than its last batch, refused), and the WAL written from then on is
// version 3.
func TestWALVersion2StillOpens(t *testing.T) {
	keys, _ := newKeyring()
	write := func(t *testing.T, keepTo uint64) string {
		dir := t.TempDir()
		s := openStore(t, dir, testOpts(t, keys))
		storeN(t, s, 1, 5, "a")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Batches 6..7 and 8..9; the claim of the last: the log ended
		// at 7 before it, at 9 after it.
		const gen = 7
		w := make([]byte, walDataStart)
		copy(w, walHeader(gen, s.sealClaim(gen, 7, 9, entry(9, "").Term)))
		for i := uint64(6); i <= keepTo; i++ {
			w = appendWALRecord(w, gen, sealEntry(keys.Current(), testCluster, entry(i, "a-"+itoa(i))), i == 7 || i == 9)
		}
		w = append(w, make([]byte, 1<<10)...)
		if err := os.WriteFile(filepath.Join(dir, WALFile), w, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := write(t, 9)
	c := openStore(t, dir, testOpts(t, keys))
	wantEntries(t, c, 1, 9, "a")
	storeN(t, c, 10, 10, "a")
	if b := readWALBytes(t, dir); string(b[:len(walMagic)]) != walMagic {
		t.Fatalf("the WAL written after opening a version 2 one starts %q", b[:len(walMagic)])
	}
	_ = c.Close()
	c = openStore(t, dir, testOpts(t, keys))
	wantEntries(t, c, 1, 10, "a")

	c = openStore(t, write(t, 7), testOpts(t, keys)) // the last batch lost
	wantEntries(t, c, 1, 7, "a")
	dir = write(t, 5) // both batches lost
	_, err := Open(dir, testOpts(t, keys))
	wantRolledBack(t, err, filepath.Join(dir, WALFile))
}
