package manager

import (
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
)

// Bounds of the cache of recent raft entries above the sealed log.
const (
	// logCacheEntries is how many of the newest entries are kept, as
	// raft.NewLogCache(1024, …) did.
	logCacheEntries = 1024
	// logCacheBytes bounds the entries' data: under load an entry is a
	// batch of up to proposeMaxBytes, so 1,024 of them could hold 256 MiB
	// (docs/PERFORMANCE.md, "A large state"). 8 MiB still holds the tens
	// of entries that replication to a follower that keeps up reads.
	logCacheBytes = 8 << 20
)

// logCache keeps the newest entries stored through it in memory, so that
// replicating them does not read and open them again: at most maxEntries
// entries and, beyond the newest one, at most maxBytes of their Data and
// Extensions. It holds a contiguous run of indexes [first, last]; a store
// that does not continue the run (after a DeleteRange, or a snapshot
// installed on a follower) starts a new run. Everything else goes to
// the store.
type logCache struct {
	store              raft.LogStore
	maxEntries         int
	maxBytes           int
	mu                 sync.RWMutex
	ring               []*raft.Log
	first, last, count uint64 // the run held; count is 0 when empty
	bytes              int
}

var (
	_ raft.LogStore          = (*logCache)(nil)
	_ raft.MonotonicLogStore = (*logCache)(nil)
)

func newLogCache(store raft.LogStore, maxEntries, maxBytes int) (*logCache, error) {
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil, fmt.Errorf("log cache: entries (%d) and bytes (%d) must be positive", maxEntries, maxBytes)
	}
	return &logCache{store: store, maxEntries: maxEntries, maxBytes: maxBytes, ring: make([]*raft.Log, maxEntries)}, nil
}

func logSize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) }

// IsMonotonic passes on the store's answer, as raft.LogCache does.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (c *logCache) GetLog(idx uint64, log *raft.Log) error {
	c.mu.RLock()
	var cached *raft.Log
	if c.count > 0 && idx >= c.first && idx <= c.last {
		cached = c.ring[idx%uint64(len(c.ring))]
	}
	c.mu.RUnlock()
	if cached != nil {
		*log = *cached
		return nil
	}
	return c.store.GetLog(idx, log)
}

func (c *logCache) StoreLog(log *raft.Log) error {
	return c.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores logs, then caches them: only what the store took.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return fmt.Errorf("unable to store logs within log store, err: %q", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		c.add(l)
	}
	return nil
}

// add appends l to the run held, starting a new run unless l follows it,
// and evicts the oldest entries beyond the bounds. c.mu must be held.
func (c *logCache) add(l *raft.Log) {
	if c.count > 0 && l.Index != c.last+1 {
		c.reset()
	}
	if c.count == uint64(len(c.ring)) {
		c.evictOldest()
	}
	if c.count == 0 {
		c.first = l.Index
	}
	c.ring[l.Index%uint64(len(c.ring))] = l
	c.last = l.Index
	c.count++
	c.bytes += logSize(l)
	for c.bytes > c.maxBytes && c.count > 1 {
		c.evictOldest()
	}
}

func (c *logCache) evictOldest() {
	slot := c.first % uint64(len(c.ring))
	c.bytes -= logSize(c.ring[slot])
	c.ring[slot] = nil
	c.first++
	c.count--
}

func (c *logCache) reset() {
	clear(c.ring)
	c.first, c.last, c.count, c.bytes = 0, 0, 0, 0
}

func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }
func (c *logCache) LastIndex() (uint64, error)  { return c.store.LastIndex() }

// DeleteRange forgets every cached entry, as raft.LogCache does, then
// deletes in the store.
func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
	return c.store.DeleteRange(min, max)
}
