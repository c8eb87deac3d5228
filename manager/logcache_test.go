package manager

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts the reads that reach the store.
type countingStore struct {
	*raft.InmemStore
	gets atomic.Int64
}

func (s *countingStore) GetLog(idx uint64, log *raft.Log) error {
	s.gets.Add(1)
	return s.InmemStore.GetLog(idx, log)
}

func entry(idx uint64, size int, fill byte) *raft.Log {
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{fill}, size)}
}

// get reads idx through c and reports whether the store was asked.
func get(t *testing.T, c *logCache, s *countingStore, idx uint64) (*raft.Log, bool) {
	t.Helper()
	before := s.gets.Load()
	var l raft.Log
	if err := c.GetLog(idx, &l); err != nil {
		t.Fatalf("GetLog(%d): %v", idx, err)
	}
	return &l, s.gets.Load() != before
}

// TestLogCacheBounds: the cache holds the newest entries within both of
// its bounds, entries and bytes, and serves the older ones from the store;
// every entry reads back as stored. raft.NewLogCache(1024, …) held all
// 100 entries of 64 KiB here (6.25 MiB for a 1 MiB bound).
func TestLogCacheBounds(t *testing.T) {
	for _, tc := range []struct {
		name              string
		entries, maxBytes int
		n, size           int
		wantCached        int
	}{
		{"bytes bound", 1024, 1 << 20, 100, 64 << 10, 16},
		{"entries bound", 8, 1 << 20, 100, 100, 8},
		{"one entry over the bytes bound stays", 1024, 1 << 10, 3, 4 << 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &countingStore{InmemStore: raft.NewInmemStore()}
			c, err := newLogCache(s, tc.entries, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			// In batches of 3, as raft stores them.
			var batch []*raft.Log
			for i := 1; i <= tc.n; i++ {
				batch = append(batch, entry(uint64(i), tc.size, byte(i)))
				if len(batch) == 3 || i == tc.n {
					if err := c.StoreLogs(batch); err != nil {
						t.Fatal(err)
					}
					batch = nil
				}
			}
			if c.bytes > max(tc.maxBytes, tc.size) || int(c.count) != tc.wantCached {
				t.Errorf("cache holds %d entries, %d bytes; want %d entries, at most %d bytes", c.count, c.bytes, tc.wantCached, tc.maxBytes)
			}
			for i := 1; i <= tc.n; i++ {
				l, fromStore := get(t, c, s, uint64(i))
				if l.Index != uint64(i) || !bytes.Equal(l.Data, bytes.Repeat([]byte{byte(i)}, tc.size)) {
					t.Fatalf("entry %d read back as index %d with other data", i, l.Index)
				}
				wantStore := i <= tc.n-tc.wantCached
				if fromStore != wantStore {
					t.Errorf("entry %d: read from the store = %v; want %v", i, fromStore, wantStore)
				}
			}
		})
	}
}

// TestLogCacheNewRun: after a DeleteRange, or a store that does not follow
// the entries held (a snapshot installed on a follower), the cache never
// serves an entry the store no longer has as it was.
func TestLogCacheNewRun(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c, err := newLogCache(s, 16, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 10; i++ {
		if err := c.StoreLog(entry(i, 10, 'a')); err != nil {
			t.Fatal(err)
		}
	}
	// raft truncates a conflicting suffix, then stores new entries there.
	if err := c.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLogs([]*raft.Log{entry(6, 10, 'b'), entry(7, 10, 'b')}); err != nil {
		t.Fatal(err)
	}
	for i, want := range map[uint64]byte{5: 'a', 6: 'b', 7: 'b'} {
		l, _ := get(t, c, s, i)
		if l.Data[0] != want {
			t.Errorf("entry %d: data %q; want %q", i, l.Data[0], want)
		}
	}
	var l raft.Log
	if err := c.GetLog(8, &l); err == nil {
		t.Errorf("entry 8 was deleted and read back as %+v", l)
	}
	// A jump ahead starts a new run: the old entries are not served
	// from the cache as if they were contiguous with it.
	if err := c.StoreLog(entry(100, 10, 'c')); err != nil {
		t.Fatal(err)
	}
	if c.first != 100 || c.count != 1 {
		t.Errorf("after a jump the cache holds [%d, %d] (%d entries); want [100, 100]", c.first, c.last, c.count)
	}
	if _, fromStore := get(t, c, s, 7); !fromStore {
		t.Error("entry 7 served from the cache after a new run started")
	}
}

func TestNewLogCacheRefusesBadBounds(t *testing.T) {
	for _, b := range [][2]int{{0, 1}, {1, 0}, {-1, 1}} {
		if _, err := newLogCache(raft.NewInmemStore(), b[0], b[1]); err == nil {
			t.Errorf("newLogCache(%d entries, %d bytes) = nil error", b[0], b[1])
		}
	}
}
