package raftlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/failpoint"
	"github.com/holdfast/holdfast/internal/seal"
	"go.etcd.io/bbolt"
)

const (
	compactSuffix = ".compact"
	// reencryptBatch is how many entries one re-encryption transaction
	// rewrites; raft is blocked for the duration of one batch.
	reencryptBatch = 256
	// compactTxSize bounds a compaction transaction's size.
	compactTxSize = 16 << 20
)

// Rotator replaces a node's DEK: the new key becomes current, every entry
// and snapshot sealed under an older key is re-sealed, the bolt file is
// compacted so that no free page still holds old ciphertext, and only then
// are the older keys dropped from the keyring and the key file.
//
// The key file is rewritten twice: first holding the new key as current
// and the older ones as previous (before anything is re-sealed), and
// finally holding only the new key. A crash at any point leaves a node
// that opens everything; Resume finishes the job.
type Rotator struct {
	// KeyFile is the path of the key file, rewritten atomically.
	KeyFile string
	// Store is the node's raft log.
	Store *Store
	// Snapshots is the node's snapshot store; nil if it has none. It must
	// share Store's Keyring.
	Snapshots *SnapshotStore
	// Save, when set, writes the key file instead of SaveKeyFile(KeyFile),
	// e.g. wrapped under a KEK (autolock). It must write atomically.
	Save func(KeyFile) error
}

// save writes the key file through r.Save, or SaveKeyFile.
func (r Rotator) save(kf KeyFile) error {
	if r.Save != nil {
		return r.Save(kf)
	}
	return SaveKeyFile(r.KeyFile, kf)
}

func (r Rotator) check() error {
	if (r.KeyFile == "" && r.Save == nil) || r.Store == nil {
		return errors.New("raftlog: rotator needs a key file and a store")
	}
	if r.Snapshots != nil && r.Snapshots.keys != r.Store.keys {
		return errors.New("raftlog: rotator: store and snapshot store have different keyrings")
	}
	return nil
}

// Rotate makes next the current DEK and retires all others. It is safe
// while raft uses the stores: appends and deletes wait only for the batch
// being re-sealed, and for the compaction.
func (r Rotator) Rotate(ctx context.Context, next seal.Key) error {
	if err := r.check(); err != nil {
		return err
	}
	if next.IsZero() {
		return errors.New("raftlog: rotate: zero key")
	}
	s := r.Store
	s.mu.Lock()
	old := s.keys.KeyFile()
	kf := KeyFile{Current: next}
	for _, k := range append([]seal.Key{old.Current}, old.Previous...) {
		if !k.Equal(next) && !containsKey(kf.Previous, k) {
			kf.Previous = append(kf.Previous, k)
		}
	}
	err := r.save(kf)
	if err == nil {
		s.keys.set(kf)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	s.log.Info("rotating raft DEK", "from", old.Current.ID().String(), "to", next.ID().String())
	return r.Resume(ctx)
}

// Resume finishes a rotation: it re-seals everything not sealed under the
// current key, compacts the bolt file, and drops all other keys from the
// keyring and the key file. It is idempotent; call it at startup when the
// key file holds previous keys. A cancelled ctx stops it between batches,
// leaving the node consistent.
func (r Rotator) Resume(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
	}
	s := r.Store
	n, err := s.reencrypt(ctx)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	failpoint.Hit(failpoint.DEKRotateLogResealed)
	if r.Snapshots != nil {
		if err := r.Snapshots.reseal(); err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	failpoint.Hit(failpoint.DEKRotateResealed)
	if err := s.Compact(); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	failpoint.Hit(failpoint.DEKRotateCompacted)
	kf := KeyFile{Current: s.keys.Current()}
	if err := r.save(kf); err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	s.keys.set(kf)
	s.log.Info("raft DEK rotated", "key", kf.Current.ID().String(), "resealed", n)
	return nil
}

// reencrypt re-seals, in batches, every entry not sealed under the current
// key, and returns how many it re-sealed.
func (s *Store) reencrypt(ctx context.Context) (int, error) {
	first, err := s.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := s.LastIndex()
	if err != nil {
		return 0, err
	}
	total := 0
	for lo := first; lo != 0 && lo <= last; lo += reencryptBatch {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.reencryptBatch(lo, min(last, lo+reencryptBatch-1))
		total += n
		if err != nil {
			return total, err
		}
	}
	// The stable values and the log state too.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inner == nil {
		return total, ErrClosed
	}
	if err := s.resealValues(); err != nil {
		return total, err
	}
	return total, nil
}

// reencryptBatch re-seals entries lo..hi under the current key in one
// transaction, holding the store exclusively.
func (s *Store) reencryptBatch(lo, hi uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inner == nil {
		return 0, ErrClosed
	}
	// Re-seal in bolt only: no older copy may stay in the WAL to be replayed.
	if s.w != nil {
		if err := s.drain(); err != nil {
			return 0, err
		}
	}
	k := s.keys.Current()
	var out []*raft.Log
	for idx := lo; idx <= hi; idx++ {
		var raw raft.Log
		if err := s.getRaw(idx, &raw); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue // deleted by raft meanwhile
			}
			return 0, err
		}
		id, err := recordKeyID(&raw)
		if err != nil {
			return 0, &RecordError{Path: s.path, Index: idx, Err: err}
		}
		if id == k.ID() {
			continue
		}
		var l raft.Log
		if err := openEntry(s.keys, s.clusterID, idx, &raw, &l); err != nil {
			return 0, &RecordError{Path: s.path, Index: idx, Err: err}
		}
		out = append(out, sealEntry(k, s.clusterID, &l))
	}
	if len(out) == 0 {
		return 0, nil
	}
	if err := s.count.reserve(s, k.ID(), uint64(len(out)), s.threshold); err != nil {
		return 0, err
	}
	if err := s.storeBolt(out); err != nil {
		return 0, fmt.Errorf("re-seal entries %d-%d: %w", lo, hi, err)
	}
	return len(out), nil
}

// Compact rewrites the bolt file with only its live data (bbolt.Compact
// into <file>.compact, fsync, rename over the original, fsync the
// directory), so no free page keeps old ciphertext, and zeroes the WAL's
// records for the same reason. Raft's calls wait until it is done. If the
// store cannot be reopened afterwards it is closed and every call returns
// ErrClosed.
func (s *Store) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inner == nil {
		return ErrClosed
	}
	if s.w != nil {
		if err := s.drain(); err != nil {
			return fmt.Errorf("compact %s: %w", s.path, err)
		}
		// A new generation even if the WAL is empty: its claim and
		// trailers are then sealed under the current key, like
		// everything else.
		if err := s.w.reset(); err != nil {
			s.w.dirty = true
			return fmt.Errorf("compact %s: %w", s.path, err)
		}
		if err := s.w.wipe(); err != nil {
			return fmt.Errorf("compact %s: %w", s.path, err)
		}
	}
	if err := s.inner.Close(); err != nil {
		s.inner = nil
		return fmt.Errorf("compact %s: close: %w", s.path, err)
	}
	s.inner = nil
	renamed, cerr := compactFile(s.path)
	if renamed && cerr != nil {
		// The new file is in place but its directory entry may not be
		// durable: a power cut could bring the old file back and lose
		// what is written from now on. Nothing more may be acknowledged.
		if s.w != nil {
			_ = s.w.close()
			s.w = nil
		}
		return fmt.Errorf("compact %s: %w; the store is closed", s.path, cerr)
	}
	inner, err := openBolt(s.path, nil)
	if err != nil {
		return fmt.Errorf("compact %s: reopen: %w", s.path, errors.Join(cerr, err))
	}
	s.inner = inner
	if cerr != nil {
		return fmt.Errorf("compact %s: %w", s.path, cerr)
	}
	return nil
}

// compactFile compacts the bolt file at path into a new file and renames
// it over path; renamed says the rename happened (whatever err says).
func compactFile(path string) (renamed bool, err error) {
	tmp := path + compactSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	src, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		return false, err
	}
	defer src.Close()
	dst, err := bbolt.Open(tmp, 0o600, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := bbolt.Compact(dst, src, compactTxSize); err != nil {
		_ = dst.Close()
		return false, err
	}
	if err := dst.Sync(); err != nil {
		_ = dst.Close()
		return false, err
	}
	if err := dst.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(path))
}
