package raftlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// ErrInUse means another process, a running daemon, holds the bolt file.
var ErrInUse = errors.New("the raft log is in use by a running holdfast daemon")

// lockWait is how long OpenReadOnly waits for the bolt file's lock.
const lockWait = 200 * time.Millisecond

// OpenReadOnly opens <dir>/raft.db and <dir>/raft.wal for reading only,
// for offline tools: it creates and changes nothing. A daemon holds the file's exclusive lock
// while it runs, so opening a running node's log fails with ErrInUse.
// The returned Store refuses writes (bolt's read-only mode).
func OpenReadOnly(dir string, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, DBFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	inner, err := openBolt(path, &bbolt.Options{ReadOnly: true, Timeout: lockWait})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w; stop it first", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", path, err)
	}
	// Entries still in the WAL are read from it, leaving it as it is.
	s := newStore(dir, opts)
	s.inner = inner
	s.threshold = DefaultRotationThreshold
	have, err := s.loadState()
	if err != nil {
		_ = inner.Close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	s.sealedValues = have
	c, err := readWALFile(s.walPath, s.openTrailer)
	if err == nil {
		err = s.checkWAL(have, c, withWAL(s.st, c.logs).last())
	}
	if err != nil {
		_ = inner.Close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	s.pending = c.logs
	return s, nil
}

// OpenSnapshotsReadOnly returns a snapshot store over <dir>/snapshots for
// offline tools: unlike NewSnapshotStore it creates and removes nothing.
// Use only List, Open and Verify on it.
func OpenSnapshotsReadOnly(dir string, opts Options) (*SnapshotStore, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &SnapshotStore{dir: filepath.Join(dir, snapDir), retain: 1, clusterID: opts.ClusterID, keys: opts.Keys, log: opts.logger()}, nil
}
