package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Raft's StableStore keys.
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)

// editConf lets f change the conf bucket of the bolt file at path.
func editConf(t *testing.T, path string, f func(b *bbolt.Bucket)) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { f(tx.Bucket([]byte("conf"))); return nil }); err != nil {
		t.Fatal(err)
	}
}

// confValue returns a copy of the stored conf value under k.
func confValue(t *testing.T, path string, k []byte) []byte {
	t.Helper()
	var v []byte
	editConf(t, path, func(b *bbolt.Bucket) { v = bytes.Clone(b.Get(k)) })
	return v
}

// deleteEntries deletes entries lo..hi from the bolt file at path, as an
// attacker with the stopped node's disk would, with a few lines of bbolt.
func deleteEntries(t *testing.T, path string, lo, hi uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		for i := lo; i <= hi; i++ {
			if err := tx.Bucket([]byte("logs")).Delete(indexKey(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// wantRolledBack checks that err refuses a rolled-back log, naming path
// and saying what to do.
func wantRolledBack(t *testing.T, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, ErrTampered) {
		t.Fatalf("got %v; want an error wrapping ErrRolledBack and ErrTampered", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "wipe it and rejoin") {
		t.Fatalf("error %q does not name %s and say what to do", msg, path)
	}
}

// TestStableValuesSealed: raft's term and vote records are sealed and
// bound to their name, cluster and node; an edited, swapped or removed
// value, or one read as another node, fails closed naming the file.
func TestStableValuesSealed(t *testing.T) {
	keys, _ := newKeyring()
	setup := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		opts := testOpts(t, keys)
		opts.NodeID = "node-a"
		s := openStore(t, dir, opts)
		if err := s.SetUint64(keyCurrentTerm, 7); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64(keyLastVoteTerm, 6); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(keyLastVoteCand, []byte("node-b")); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, s.Path()
	}

	t.Run("round trip, not stored raw", func(t *testing.T) {
		dir, path := setup(t)
		if v := confValue(t, path, keyCurrentTerm); len(v) == 8 || bytes.Contains(confValue(t, path, keyLastVoteCand), []byte("node-b")) {
			t.Fatalf("stable values are stored raw: %x", v)
		}
		opts := testOpts(t, keys)
		opts.NodeID = "node-a"
		s := openStore(t, dir, opts)
		if got, err := s.GetUint64(keyCurrentTerm); err != nil || got != 7 {
			t.Fatalf("CurrentTerm = %d, %v; want 7", got, err)
		}
		if got, err := s.Get(keyLastVoteCand); err != nil || string(got) != "node-b" {
			t.Fatalf("LastVoteCand = %q, %v; want node-b", got, err)
		}
		if _, err := s.Get([]byte("never-set")); err == nil || err.Error() != raftboltdb.ErrKeyNotFound.Error() {
			t.Fatalf("Get of a key never set: %v; want raft-boltdb's not found", err)
		}
	})

	// Each is refused by Open itself, before raft reads the value.
	for _, tc := range []struct {
		name   string
		edit   func(b *bbolt.Bucket)
		nodeID string
	}{
		{"flipped byte", func(b *bbolt.Bucket) {
			v := bytes.Clone(b.Get(keyCurrentTerm))
			v[len(v)-3] ^= 1
			_ = b.Put(keyCurrentTerm, v)
		}, "node-a"},
		{"swapped values", func(b *bbolt.Bucket) {
			x, y := bytes.Clone(b.Get(keyCurrentTerm)), bytes.Clone(b.Get(keyLastVoteTerm))
			_ = b.Put(keyCurrentTerm, y)
			_ = b.Put(keyLastVoteTerm, x)
		}, "node-a"},
		{"raw value written over", func(b *bbolt.Bucket) {
			_ = b.Put(keyLastVoteTerm, []byte{0, 0, 0, 0, 0, 0, 0, 1})
		}, "node-a"},
		{"removed value", func(b *bbolt.Bucket) { _ = b.Delete(keyLastVoteCand) }, "node-a"},
		{"another node", nil, "node-c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := setup(t)
			if tc.edit != nil {
				editConf(t, path, tc.edit)
			}
			opts := testOpts(t, keys)
			opts.NodeID = tc.nodeID
			for _, open := range []func(string, Options) (*Store, error){Open, OpenReadOnly} {
				s, err := open(dir, opts)
				if err == nil {
					s.Close()
					t.Fatal("the store opened; want it refused")
				}
				if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), path) {
					t.Fatalf("got %v; want ErrTampered naming %s", err, path)
				}
			}
		})
	}
}

// writeLegacyStore writes a store as the previous release left it: raw
// stable values, version 1 records in raft.db, and a version 1 WAL
// holding entries from..to after them.
func writeLegacyStore(t *testing.T, dir string, keys *Keyring, boltTo, walTo uint64) {
	t.Helper()
	b, err := openBolt(filepath.Join(dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= boltTo; i++ {
		logs = append(logs, sealEntryVersion(keys.Current(), testCluster, entry(i, "old-"+itoa(i)), recordVersionV1))
	}
	if err := b.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := b.SetUint64(keyCurrentTerm, 4); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(keyLastVoteCand, []byte("node-b")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	w := make([]byte, walDataStart)
	copy(w, walHeader(3, nil))
	for i := boltTo + 1; i <= walTo; i++ {
		w = appendWALRecord(w, 3, sealEntryVersion(keys.Current(), testCluster, entry(i, "old-"+itoa(i)), recordVersionV1), i == walTo)
	}
	if err := os.WriteFile(filepath.Join(dir, WALFile), w, 0o600); err != nil {
		t.Fatal(err)
	}
}

func itoa(i uint64) string { return strconv.FormatUint(i, 10) }

// TestUpgradeFromRawStore: a store the previous release wrote (raw stable
// values, version 1 records and WAL) opens, its values are read once and
// sealed in place, and its log is tracked from then on; taking the
// upgraded store back to raw values is refused.
func TestUpgradeFromRawStore(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	writeLegacyStore(t, dir, keys, 8, 10)
	s := openStore(t, dir, testOpts(t, keys))
	wantEntries(t, s, 1, 10, "old")
	if got, err := s.GetUint64(keyCurrentTerm); err != nil || got != 4 {
		t.Fatalf("CurrentTerm after upgrade = %d, %v; want 4", got, err)
	}
	storeN(t, s, 11, 12, "old")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := confValue(t, s.Path(), keyCurrentTerm); len(v) == 8 {
		t.Fatal("CurrentTerm is still raw after the upgrade")
	}
	s = openStore(t, dir, testOpts(t, keys))
	wantEntries(t, s, 1, 12, "old")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A crash after the WAL became this release's but before the
	// upgrade's transaction: the store opens as the previous release's.
	mid := t.TempDir()
	writeLegacyStore(t, mid, keys, 5, 5)
	w := make([]byte, walDataStart)
	copy(w, walHeader(4, newStore(mid, testOpts(t, keys)).sealClaim(4, 0, 0, 0)))
	if err := os.WriteFile(filepath.Join(mid, WALFile), w, 0o600); err != nil {
		t.Fatal(err)
	}
	m := openStore(t, mid, testOpts(t, keys))
	wantEntries(t, m, 1, 5, "old")
	if got, err := m.GetUint64(keyCurrentTerm); err != nil || got != 4 {
		t.Fatalf("CurrentTerm after an interrupted upgrade = %d, %v; want 4", got, err)
	}

	// Downgrade: the state record removed and raw values written back.
	editConf(t, s.Path(), func(b *bbolt.Bucket) {
		_ = b.Delete(stateKey)
		_ = b.Put(keyCurrentTerm, []byte{0, 0, 0, 0, 0, 0, 0, 1})
		_ = b.Put(keyLastVoteCand, []byte("node-x"))
		_ = b.Delete([]byte("holdfast/raftlog/sealed-count"))
	})
	_, err := Open(dir, testOpts(t, keys))
	wantRolledBack(t, err, s.Path())
	_, err = OpenReadOnly(dir, testOpts(t, keys))
	wantRolledBack(t, err, s.Path())
}

// TestRollbackRefused: with the node stopped, entries deleted from
// raft.db (the tail, as in the reproduction, the middle, the
// head) or the record of what it holds tampered with are refused by Open
// and by the read-only open offline tools use.
func TestRollbackRefused(t *testing.T) {
	keys, _ := newKeyring()
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, path string)
	}{
		{"tail 20-21 deleted", func(t *testing.T, p string) { deleteEntries(t, p, 20, 21) }},
		{"last entry deleted", func(t *testing.T, p string) { deleteEntries(t, p, 21, 21) }},
		{"middle entry deleted", func(t *testing.T, p string) { deleteEntries(t, p, 10, 10) }},
		{"first entries deleted", func(t *testing.T, p string) { deleteEntries(t, p, 1, 3) }},
		{"deleted entry put back", nil}, // set below
		{"last entry rewound to an older term", func(t *testing.T, p string) {
			editValues(t, p, func(get func(uint64) []byte, put func(uint64, []byte)) {
				put(21, rawEncode(t, sealEntry(keys.Current(), testCluster, &raft.Log{Index: 21, Term: 1, Type: raft.LogCommand, Data: []byte("old")})))
			})
		}},
		{"state record removed", func(t *testing.T, p string) { editConf(t, p, func(b *bbolt.Bucket) { _ = b.Delete(stateKey) }) }},
		{"state record flipped", func(t *testing.T, p string) {
			editConf(t, p, func(b *bbolt.Bucket) {
				v := bytes.Clone(b.Get(stateKey))
				v[len(v)/2] ^= 1
				_ = b.Put(stateKey, v)
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, testOpts(t, keys))
			storeN(t, s, 1, 10, "v")
			storeN(t, s, 11, 21, "v")
			if tc.edit == nil {
				if err := s.DeleteRange(1, 2); err != nil { // raft compacts its head
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			edit := tc.edit
			if edit == nil {
				edit = func(t *testing.T, p string) {
					editValues(t, p, func(_ func(uint64) []byte, put func(uint64, []byte)) {
						put(1, rawEncode(t, sealEntry(keys.Current(), testCluster, entry(1, "v-1"))))
					})
				}
			}
			edit(t, s.Path())
			_, err := Open(dir, testOpts(t, keys))
			if tc.name == "state record flipped" {
				if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), s.Path()) {
					t.Fatalf("Open: %v; want ErrTampered naming %s", err, s.Path())
				}
			} else {
				wantRolledBack(t, err, s.Path())
			}
			_, err = OpenReadOnly(dir, testOpts(t, keys))
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("OpenReadOnly: %v; want it refused", err)
			}
		})
	}
}

// rawEncode is the bolt value of a stored (sealed) log.
func rawEncode(t *testing.T, l *raft.Log) []byte {
	t.Helper()
	dir := t.TempDir()
	b, err := openBolt(filepath.Join(dir, "x.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.StoreLogs([]*raft.Log{l}); err != nil {
		t.Fatal(err)
	}
	var v []byte
	_ = b.db.View(func(tx *bbolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketLogs).Get(indexKey(l.Index))); return nil })
	return v
}

// TestLegitimateTruncationsOpen: raft's own changes — a conflicting
// suffix deleted and replaced, the head compacted after a snapshot, a
// gap left by a snapshot installed past the log — reopen cleanly, with
// and without entries still in the WAL.
func TestLegitimateTruncationsOpen(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	storeN(t, s, 1, 30, "v")
	if err := s.DeleteRange(25, 30); err != nil { // conflicting suffix
		t.Fatal(err)
	}
	storeN(t, s, 25, 26, "w")
	if err := s.DeleteRange(1, 10); err != nil { // compaction
		t.Fatal(err)
	}
	storeN(t, s, 100, 104, "x") // after a snapshot at 99
	hold := holdFlusher(t, s)
	storeN(t, s, 105, 106, "x")
	crashed := crashCopy(t, dir)
	hold()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, crashed} {
		c, err := Open(d, testOpts(t, keys))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if first, _ := c.FirstIndex(); first != 11 {
			t.Errorf("first = %d; want 11", first)
		}
		if last, _ := c.LastIndex(); last != 106 {
			t.Errorf("last = %d; want 106", last)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(crashed); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(dir, testOpts(t, keys)); err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
}

// TestWALRollbackRefused: entries that are only in the WAL (a node that
// crashed or lost power) cannot be cut away beyond the last batch: the
// WAL's sealed claim says where the log ended before that batch.
func TestWALRollbackRefused(t *testing.T) {
	s, dir, keys := walStore(t, true)
	storeN(t, s, 1, 3, "a")
	s.walMu.Lock()
	second := s.w.off
	s.walMu.Unlock()
	storeN(t, s, 4, 6, "a")
	s.walMu.Lock()
	third := s.w.off
	s.walMu.Unlock()
	storeN(t, s, 7, 9, "a")

	t.Run("last two batches cut", func(t *testing.T) {
		crashed := crashCopy(t, dir)
		p := filepath.Join(crashed, WALFile)
		editFile(t, p, func(b []byte) { clear(b[second:]) })
		_, err := Open(crashed, testOpts(t, keys))
		wantRolledBack(t, err, p)
	})
	t.Run("whole WAL removed", func(t *testing.T) {
		crashed := crashCopy(t, dir)
		if err := os.Remove(filepath.Join(crashed, WALFile)); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the refusal creates no WAL a second open would take
			_, err := Open(crashed, testOpts(t, keys))
			wantRolledBack(t, err, filepath.Join(crashed, WALFile))
		}
	})
	t.Run("whole WAL zeroed", func(t *testing.T) {
		crashed := crashCopy(t, dir)
		editFile(t, filepath.Join(crashed, WALFile), func(b []byte) { clear(b) })
		for range 2 {
			_, err := Open(crashed, testOpts(t, keys))
			wantRolledBack(t, err, filepath.Join(crashed, WALFile))
		}
	})
	t.Run("trailers lost to a power cut, batch kept", func(t *testing.T) {
		// One fdatasync covers the batch and the two trailers before it
		// that its write rewrites; a power cut may keep any of them. Here
		// the batch, with the trailers as the batch before left them.
		crashed := crashCopy(t, dir)
		editFile(t, filepath.Join(crashed, WALFile), func(b []byte) {
			gen := binary.BigEndian.Uint64(b[len(walMagic):])
			offs, ts := walTrailerOffs(t, s, b)
			copy(b[offs[1]:], s.sealTrailer(gen, 1, offs[1], ts[1].with(trailerFollowed)))
			copy(b[offs[2]:], s.sealTrailer(gen, 2, offs[2], ts[2].with(trailerOpen)))
		})
		c := openStore(t, crashed, testOpts(t, keys))
		wantEntries(t, c, 1, 9, "a")
	})
	t.Run("last batch cut: the documented window", func(t *testing.T) {
		crashed := crashCopy(t, dir)
		editFile(t, filepath.Join(crashed, WALFile), func(b []byte) { clear(b[third:]) })
		c := openStore(t, crashed, testOpts(t, keys))
		wantEntries(t, c, 1, 6, "a")
	})
}

// TestFlushRaceKeepsWALOpenable makes the flusher race deterministic: a
// batch that does not follow the log (a follower's first append after a
// snapshot past its short log) arrives after flushPending has emptied
// pending and before it starts the WAL over. It must not be appended to
// the generation holding entries 1..10, which would leave a WAL Open
// refuses.
func TestFlushRaceKeepsWALOpenable(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	s.pmu.Lock()
	s.flushAfter = 1 << 62 // only the test flushes
	s.pmu.Unlock()
	storeN(t, s, 1, 10, "a")

	var once sync.Once
	var appended bool
	var crashed string
	hook := func(s *Store) {
		once.Do(func() {
			var sealed []*raft.Log
			for i := uint64(101); i <= 102; i++ {
				sealed = append(sealed, sealEntry(keys.Current(), testCluster, entry(i, "b-"+itoa(i))))
			}
			done, err := s.tryAppend(sealed)
			if err != nil {
				t.Error(err)
			}
			appended = done
			crashed = crashCopy(t, dir) // a crash right now
		})
	}
	testHookFlushGap.Store(&hook)
	t.Cleanup(func() { testHookFlushGap.Store(nil) })
	if err := s.flushPending(); err != nil {
		t.Fatal(err)
	}
	testHookFlushGap.Store(nil)
	if appended {
		t.Error("a batch not following the WAL's records was appended to its generation")
	}
	if c, err := Open(crashed, testOpts(t, keys)); err != nil {
		t.Fatalf("the WAL at that moment does not open: %v", err)
	} else {
		_ = c.Close()
	}
	// Through the API, the same batch goes in after a drain.
	storeN(t, s, 101, 102, "b")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := openStore(t, dir, testOpts(t, keys))
	if last, _ := c.LastIndex(); last != 102 {
		t.Fatalf("last = %d; want 102", last)
	}
}

// TestWALUnwrittenHeaderIsNew: a crash while the first open created the
// WAL (the previous release wrote its header in place) leaves zeros or a
// partial magic and no data: that is a new WAL, not tampering. A partial
// header followed by data is still refused.
func TestWALUnwrittenHeaderIsNew(t *testing.T) {
	keys, _ := newKeyring()
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"zeros", make([]byte, walDataStart), true},
		{"partial magic", append([]byte(walMagic[:3]), make([]byte, walGrowStep-3)...), true},
		{"partial old magic", append([]byte(walMagicV1[:7]), make([]byte, 100)...), true},
		{"partial magic then data", func() []byte {
			b := append([]byte(walMagic[:3]), make([]byte, walDataStart)...)
			return append(b, 0xa7, 1, 2, 3)
		}(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, WALFile), tc.b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, testOpts(t, keys))
			if !tc.ok {
				if !errors.Is(err, ErrTampered) {
					t.Fatalf("Open: %v; want ErrTampered", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v; want a new WAL", err)
			}
			defer s.Close()
			storeN(t, s, 1, 3, "a")
			wantEntries(t, s, 1, 3, "a")
		})
	}
}

// TestWALFramingDamageRefused: with three synced batches, damage to the
// second batch's first record's framing (mark zeroed, generation or
// length changed) must not make Open succeed with the first batch only;
// the same damage to the last batch is a torn write and opens.
func TestWALFramingDamageRefused(t *testing.T) {
	for _, perBatch := range []uint64{1, 3} {
		s, dir, keys := walStore(t, true)
		var starts []int64
		for b := uint64(0); b < 3; b++ {
			s.walMu.Lock()
			starts = append(starts, s.w.off)
			s.walMu.Unlock()
			storeN(t, s, b*perBatch+1, (b+1)*perBatch, "a")
		}
		damages := map[string]func(b []byte, off int64){
			"mark zeroed":        func(b []byte, off int64) { b[off] = 0 },
			"generation flipped": func(b []byte, off int64) { b[off+8] ^= 1 },
			"length changed":     func(b []byte, off int64) { b[off+12]++ },
			"length shortened":   func(b []byte, off int64) { b[off+12]-- },
		}
		for name, damage := range damages {
			t.Run(name+" in the second batch of "+itoa(perBatch), func(t *testing.T) {
				crashed := crashCopy(t, dir)
				p := filepath.Join(crashed, WALFile)
				editFile(t, p, func(b []byte) { damage(b, starts[1]) })
				_, err := Open(crashed, testOpts(t, keys))
				if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), p) {
					t.Fatalf("Open: %v; want ErrTampered naming %s", err, p)
				}
			})
			t.Run(name+" in the last batch of "+itoa(perBatch), func(t *testing.T) {
				crashed := crashCopy(t, dir)
				editFile(t, filepath.Join(crashed, WALFile), func(b []byte) { damage(b, starts[2]) })
				c := openStore(t, crashed, testOpts(t, keys))
				wantEntries(t, c, 1, 2*perBatch, "a")
			})
		}
	}
}

// TestStoreLogsRefusesTooLarge: an entry whose WAL record would pass the
// limit the reader enforces is refused at write, not stored to come back
// as torn.
func TestStoreLogsRefusesTooLarge(t *testing.T) {
	s, _, _ := walStore(t, false)
	big := make([]byte, walMaxRecord)
	err := s.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: big}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("StoreLogs of a %d-byte entry: %v; want ErrTooLarge", len(big), err)
	}
	if last, _ := s.LastIndex(); last != 0 {
		t.Fatalf("the refused entry was stored (last = %d)", last)
	}
}

// TestDirectoriesSynced: the directories Open and NewSnapshotStore create,
// and the one holding the new raft.db and raft.wal, are synced.
func TestDirectoriesSynced(t *testing.T) {
	var mu sync.Mutex
	var synced []string
	record := func(dir string) error {
		mu.Lock()
		defer mu.Unlock()
		synced = append(synced, dir)
		return nil
	}
	testHookSyncDir.Store(&record)
	t.Cleanup(func() { testHookSyncDir.Store(nil) })
	keys, _ := newKeyring()
	root := t.TempDir()
	dir := filepath.Join(root, "data", "raft")
	s := openStore(t, dir, testOpts(t, keys))
	if _, err := NewSnapshotStore(dir, 2, testOpts(t, keys)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(synced)
	mu.Unlock()
	for _, want := range []string{root, filepath.Join(root, "data"), dir} {
		if !slices.Contains(got, want) {
			t.Errorf("%s was not synced (synced: %v)", want, got)
		}
	}
	// raft/ is synced after raft.db and raft.wal exist, and again for snapshots/.
	if n := slices.Index(got, dir); n < 0 || !slices.Contains(got[n+1:], dir) {
		t.Errorf("%s synced fewer than twice: %v", dir, got)
	}
	_ = s.Close()

	// A directory the caller created (as the manager does) is made
	// durable with the new raft.db in it.
	mu.Lock()
	synced = nil
	mu.Unlock()
	made := filepath.Join(root, "made")
	if err := os.Mkdir(made, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = openStore(t, made, testOpts(t, keys))
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(synced, root) || !slices.Contains(synced, made) {
		t.Errorf("after creating raft.db in %s, synced %v; want it and its parent", made, synced)
	}
}

// TestCompactDirSyncFailureIsFatal: when the directory cannot be synced
// after the compacted file is renamed into place, the rename may not
// survive a power cut, so the store stops acknowledging writes.
func TestCompactDirSyncFailureIsFatal(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s := openStore(t, dir, testOpts(t, keys))
	storeN(t, s, 1, 5, "a")
	fail := func(d string) error {
		if d == dir {
			return errors.New("injected EIO")
		}
		return nil
	}
	testHookSyncDir.Store(&fail)
	t.Cleanup(func() { testHookSyncDir.Store(nil) })
	if err := s.Compact(); err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Compact: %v; want the directory sync's error", err)
	}
	testHookSyncDir.Store(nil)
	if err := s.StoreLogs([]*raft.Log{entry(6, "a-6")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("StoreLogs after the failed compaction: %v; want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := openStore(t, dir, testOpts(t, keys))
	wantEntries(t, c, 1, 5, "a")
}
