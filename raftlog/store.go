package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/holdfast/holdfast/internal/seal"
	"go.etcd.io/bbolt"
)

// DefaultRotationThreshold is how many records a key seals before
// NeedsRotation reports true.
const DefaultRotationThreshold = 1 << 30

// DBFile is the name of the bolt file in the directory given to Open.
const DBFile = "raft.db"

// Options configures a Store or SnapshotStore.
type Options struct {
	// ClusterID is bound into every record's associated data, so an entry
	// or snapshot copied from another cluster fails to open.
	ClusterID string
	// NodeID is bound into the sealed stable values, the log state and
	// the WAL's claim and trailers, so one copied from another node's disk fails to
	// open. Every opener of a node's log must give the same one.
	NodeID string
	// Keys holds the DEKs. A node's Store and SnapshotStore share one.
	Keys *Keyring
	// RotationThreshold is how many records the current key may seal
	// before NeedsRotation reports true; 0 means DefaultRotationThreshold.
	RotationThreshold uint64
	// WALSize is the write-ahead file's capacity in bytes; 0 means
	// DefaultWALSize.
	WALSize int64
	// Logger may be nil.
	Logger *slog.Logger
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.ClusterID == "" {
		return errors.New("raftlog: options: no cluster ID")
	}
	if len(o.ClusterID) > 0xffff {
		return errors.New("raftlog: options: cluster ID longer than 65535 bytes")
	}
	if len(o.NodeID) > 0xffff {
		return errors.New("raftlog: options: node ID longer than 65535 bytes")
	}
	if o.Keys == nil || o.Keys.Current().IsZero() {
		return errors.New("raftlog: options: no keyring")
	}
	return nil
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Store is an encrypted raft.LogStore and raft.StableStore over a
// raft-boltdb file and a write-ahead file (wal.go). It seals each entry's
// Data and Extensions, and each StableStore value; a sealed log state and
// the WAL's sealed trailers say what the files must hold (integrity.go,
// trailer.go). It is safe for concurrent use.
//
// StoreLogs makes a batch durable in the WAL and keeps it in pending until
// the flusher has stored it in bolt; reads look in pending first. Locks
// are taken in this order: mu, flushMu, walMu, stMu, pmu.
type Store struct {
	// syncObs, when set, is told how long each batch took to append to
	// the WAL and sync (ObserveSyncs).
	syncObs   atomic.Pointer[func(time.Duration)]
	path      string
	walPath   string
	clusterID string
	bd        binding
	keys      *Keyring
	log       *slog.Logger
	threshold uint64

	// stMu guards st, the log state, and is held across every bolt
	// transaction that changes the logs bucket. stLast is st's last index.
	stMu   sync.Mutex
	st     logState
	stLast atomic.Uint64
	// sealedValues says the stable values and the log state are sealed
	// (always, once a read-write open has upgraded the store).
	sealedValues bool

	// mu guards inner, which compaction replaces. Log and stable
	// operations hold it shared; re-encryption batches and compaction
	// hold it exclusively, as does the switch to a new current key.
	mu    sync.RWMutex
	inner *boltLog

	// flushMu serializes moving pending entries into bolt.
	flushMu sync.Mutex
	// walMu guards w; appends hold it, and so does whatever resets the WAL.
	walMu sync.Mutex
	w     *wal // nil for a read-only store
	// pmu guards pending: sealed entries with consecutive indexes that are
	// durable in the WAL and maybe not yet in bolt.
	pmu          sync.Mutex
	pending      []*raft.Log
	pendingBytes int
	pendingSince time.Time
	flushAfter   time.Duration // how long an entry may wait for the flusher

	kick     chan struct{} // wakes the flusher
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	done     chan struct{} // closed when the flusher has returned

	count sealCounter
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Open opens, creating it if needed, <dir>/raft.db and returns a Store
// over it. A half-finished compaction left by a crash is discarded.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := mkdirDurable(dir); err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	s := newStore(dir, opts)
	if err := os.Remove(s.path + compactSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open raft log: remove stale compaction: %w", err)
	}
	_, statErr := os.Stat(s.path)
	inner, err := openBolt(s.path, nil)
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", s.path, err)
	}
	s.inner = inner
	if errors.Is(statErr, os.ErrNotExist) {
		// A new file: its directory entry must be durable too, and the
		// directory's own, which the caller may have just created.
		for _, d := range []string{dir, filepath.Dir(filepath.Clean(dir))} {
			if err := syncDir(d); err != nil {
				_ = inner.Close()
				return nil, fmt.Errorf("open raft log: %w", err)
			}
		}
	}
	if err := s.openWAL(opts.WALSize); err != nil {
		_ = inner.Close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	if err := s.count.load(s, s.keys.Current().ID()); err != nil {
		_ = inner.Close()
		_ = s.w.close()
		return nil, fmt.Errorf("open raft log %s: %w", s.path, err)
	}
	s.flushAfter = flushDelay
	s.kick, s.stop, s.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.flushLoop()
	return s, nil
}

// newStore returns a Store over dir, opened by the caller.
func newStore(dir string, opts Options) *Store {
	s := &Store{
		path:      filepath.Join(dir, DBFile),
		walPath:   filepath.Join(dir, WALFile),
		clusterID: opts.ClusterID,
		bd:        binding{clusterID: opts.ClusterID, nodeID: opts.NodeID},
		keys:      opts.Keys,
		log:       opts.logger(),
		threshold: opts.RotationThreshold,
	}
	if s.threshold == 0 {
		s.threshold = DefaultRotationThreshold
	}
	return s
}

// Path returns the bolt file's path.
func (s *Store) Path() string { return s.path }

// KeyFile returns the DEKs the store holds now (current and, during a
// rotation, previous), for rewriting the key file as it is.
func (s *Store) KeyFile() KeyFile { return s.keys.KeyFile() }

// Close moves every entry into the bolt file, and closes it and the WAL.
func (s *Store) Close() error {
	if s.stop != nil {
		s.stopOnce.Do(func() { close(s.stop) })
		<-s.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inner == nil {
		return nil
	}
	var errs []error
	if s.w != nil {
		if err := s.drain(); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, s.w.close())
		s.w = nil
	}
	if err := s.inner.Close(); err != nil {
		errs = append(errs, err)
	}
	s.inner = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close raft log: %w", err)
	}
	return nil
}

// NeedsRotation reports whether the current key has sealed at least the
// rotation threshold of records (counted conservatively across restarts).
func (s *Store) NeedsRotation() bool {
	return s.count.value(s.keys.Current().ID()) >= s.threshold
}

// SealedCount returns how many records the current key has sealed, counted
// conservatively: after a restart it may be higher than the truth, never lower.
func (s *Store) SealedCount() uint64 { return s.count.value(s.keys.Current().ID()) }

// FirstIndex implements raft.LogStore.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return 0, ErrClosed
	}
	// Pending first: the flusher moves entries into bolt before it drops
	// them from pending, so reading in this order never misses one.
	p := s.pendingFirst()
	first, err := s.inner.FirstIndex()
	if err != nil {
		return 0, err
	}
	if p != 0 && (first == 0 || p < first) {
		first = p
	}
	return first, nil
}

// LastIndex implements raft.LogStore.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return 0, ErrClosed
	}
	p := s.pendingLast() // before bolt, as in FirstIndex
	last, err := s.inner.LastIndex()
	if err != nil {
		return 0, err
	}
	return max(last, p), nil
}

// GetLog implements raft.LogStore. An entry that fails authentication or
// is stored under the wrong index is never returned; the error is a
// *RecordError wrapping ErrTampered or ErrUnknownKey.
func (s *Store) GetLog(idx uint64, l *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return ErrClosed
	}
	var raw raft.Log
	if err := s.getRaw(idx, &raw); err != nil {
		return err
	}
	if err := openEntry(s.keys, s.clusterID, idx, &raw, l); err != nil {
		return &RecordError{Path: s.path, Index: idx, Err: err}
	}
	return nil
}

// getRaw reads the stored, still sealed log at idx, from pending or bolt.
// s.mu must be held.
func (s *Store) getRaw(idx uint64, raw *raft.Log) error {
	if l := s.pendingLog(idx); l != nil {
		*raw = *l
		return nil
	}
	err := s.inner.GetLog(idx, raw)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrLogNotFound):
		return raft.ErrLogNotFound
	case errors.Is(err, bbolt.ErrDatabaseNotOpen):
		return fmt.Errorf("raft log %s: %w", s.path, err)
	default:
		// Anything else is a value raft-boltdb could not decode.
		return &RecordError{Path: s.path, Index: idx, Err: fmt.Errorf("%w: decode: %w", ErrTampered, err)}
	}
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: it seals every entry under the
// current key and stores the batch in one bolt transaction. It does not
// modify logs.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return ErrClosed
	}
	for _, l := range logs {
		// The sealed record and its WAL framing must fit in a WAL record.
		if n := walEntryFixed + minRecordSize + binary.MaxVarintLen64 + len(l.Data) + len(l.Extensions); n > walMaxRecord {
			return fmt.Errorf("store logs: entry %d: %w: its sealed record would be %d bytes; at most %d", l.Index, ErrTooLarge, n, walMaxRecord)
		}
	}
	k := s.keys.Current()
	if err := s.count.reserve(s, k.ID(), uint64(len(logs)), s.threshold); err != nil {
		return fmt.Errorf("store logs: %w", err)
	}
	sealed := make([]*raft.Log, len(logs))
	sealRange := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sealed[i] = sealEntry(k, s.clusterID, logs[i])
		}
	}
	// A large batch is sealed on two cores: the AEAD is most of what
	// sealing adds to a batch's write.
	if len(logs) >= parallelSealBatch && runtime.GOMAXPROCS(0) > 1 {
		mid := len(logs) / 2
		done := make(chan struct{})
		go func() {
			defer close(done)
			sealRange(mid, len(logs))
		}()
		sealRange(0, mid)
		<-done
	} else {
		sealRange(0, len(logs))
	}
	if err := s.appendSealed(sealed); err != nil {
		return fmt.Errorf("store logs: %w", err)
	}
	return nil
}

// DeleteRange implements raft.LogStore.
func (s *Store) DeleteRange(min, max uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return ErrClosed
	}
	if s.w == nil {
		return s.inner.DeleteRange(min, max) // read-only: bolt refuses
	}
	// Everything in the WAL goes to bolt first, and the WAL starts over,
	// so no record of a deleted entry is replayed after a crash. Appends
	// wait meanwhile.
	if err := s.drainThen(func() error { return s.deleteBolt(min, max) }); err != nil {
		return fmt.Errorf("delete logs: %w", err)
	}
	return nil
}

// Set implements raft.StableStore.
func (s *Store) Set(key, val []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return ErrClosed
	}
	return s.setValue(key, val)
}

// Get implements raft.StableStore. A missing key is raft-boltdb's
// ErrKeyNotFound ("not found"), which raft expects.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return nil, ErrClosed
	}
	return s.getValue(key)
}

// SetUint64 implements raft.StableStore.
func (s *Store) SetUint64(key []byte, val uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return ErrClosed
	}
	return s.setValue(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil {
		return 0, ErrClosed
	}
	v, err := s.getValue(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft stable store %s: value %q: %w: %d bytes, not a uint64", s.path, key, ErrTampered, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// parallelSealBatch is the batch size from which StoreLogs seals on two
// goroutines.
const parallelSealBatch = 16

// counterKey is the StableStore key of the sealed-record counter:
// key ID (8) || reserved count (8, big-endian).
var counterKey = []byte("holdfast/raftlog/sealed-count")

// sealCounter counts records sealed under the current key. It persists an
// upper bound (reserved) before sealing past it, so a crash never makes
// the count go down.
type sealCounter struct {
	mu       sync.Mutex
	id       seal.KeyID
	n        uint64
	reserved uint64
}

func (c *sealCounter) load(b *Store, id seal.KeyID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id, c.n, c.reserved = id, 0, 0
	v, err := b.getValue(counterKey)
	if err != nil {
		if errors.Is(err, raftboltdb.ErrKeyNotFound) {
			return nil
		}
		return fmt.Errorf("read sealed-record counter: %w", err)
	}
	if len(v) != seal.KeyIDSize+8 {
		return fmt.Errorf("%w: sealed-record counter is %d bytes", ErrTampered, len(v))
	}
	if seal.KeyID(v[:seal.KeyIDSize]) == id {
		c.reserved = binary.BigEndian.Uint64(v[seal.KeyIDSize:])
		c.n = c.reserved
	}
	return nil
}

func (c *sealCounter) value(id seal.KeyID) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		return 0
	}
	return c.n
}

// reserve counts n more records sealed under id, first persisting a new
// bound if the count would pass the persisted one.
func (c *sealCounter) reserve(b *Store, id seal.KeyID, n, threshold uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != id {
		c.id, c.n, c.reserved = id, 0, 0
	}
	if c.n+n > c.reserved {
		step := min(max(threshold/64, 1), 1<<16)
		next := c.n + n + step
		v := make([]byte, 0, seal.KeyIDSize+8)
		v = append(v, id[:]...)
		v = binary.BigEndian.AppendUint64(v, next)
		if err := b.setValue(counterKey, v); err != nil {
			return fmt.Errorf("persist sealed-record counter: %w", err)
		}
		c.reserved = next
	}
	c.n += n
	return nil
}
