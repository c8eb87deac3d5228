package datadir

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"
)

// ErrNodeRunning means an offline tool was pointed at the data dir of a
// running daemon.
var ErrNodeRunning = errors.New("a holdfast daemon is running on this data dir")

// OfflineLog is a stopped manager's raft log and snapshots, opened read-
// only for inspection (holdfast rafttool). It changes nothing on disk.
type OfflineLog struct {
	NodeID, ClusterID string
	store             *raftlog.Store
	snaps             *raftlog.SnapshotStore
}

// OpenOffline opens the raft log of the stopped manager whose data dir is
// dataDir. unlockKey is asked for the key (text) only when the node's keys
// are wrapped (autolock); a key that does not open them is refused with
// "invalid unlock key". A running daemon's dir is refused: its control socket
// answers, or it holds the bolt file's lock.
func OpenOffline(dataDir string, unlockKey func() (string, error)) (*OfflineLog, error) {
	if c, err := net.DialTimeout("unix", filepath.Join(dataDir, SocketFile), time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s (its control socket answers); stop it first", ErrNodeRunning, dataDir)
	}
	info, err := LoadInfo(dataDir, fsm.CurrentLevel)
	if err != nil {
		return nil, err
	}
	if info == nil {
		return nil, fmt.Errorf("%s holds no node (no node.json)", dataDir)
	}
	raftDir := filepath.Join(dataDir, RaftDir)
	dbPath := filepath.Join(raftDir, raftlog.DBFile)
	if !fileExists(dbPath) {
		return nil, fmt.Errorf("%s has no raft log (%s): only managers keep one", dataDir, dbPath)
	}
	keyFiles := keyfiles.New(dataDir)
	wrapped, err := keyFiles.Wrapped()
	if err != nil {
		return nil, err
	}
	var kek seal.Key // none: the DEK file is not wrapped
	if wrapped {
		text, err := unlockKey()
		if err != nil {
			return nil, err
		}
		if text == "" {
			return nil, fmt.Errorf("the keys of %s are wrapped under the autolock unlock key: give it on stdin or with --key-file FILE", dataDir)
		}
		uk, err := autolock.ParseKey(text)
		if err != nil {
			return nil, fmt.Errorf("invalid unlock key: %w", err)
		}
		kek = uk.KEK()
	}
	kf, err := keyFiles.LoadDEKsWith(info.NodeID, kek)
	if errors.Is(err, autolock.ErrInvalidKey) {
		return nil, fmt.Errorf("invalid unlock key: it does not open the keys of %s", dataDir)
	}
	if err != nil {
		return nil, err
	}
	opts := raftlog.Options{ClusterID: info.ClusterID, NodeID: info.NodeID, Keys: kf.Keyring()}
	store, err := raftlog.OpenReadOnly(raftDir, opts)
	if errors.Is(err, raftlog.ErrInUse) {
		return nil, fmt.Errorf("%w: %s (it holds the raft log); stop it first", ErrNodeRunning, dataDir)
	}
	if err != nil {
		return nil, err
	}
	snaps, err := raftlog.OpenSnapshotsReadOnly(raftDir, opts)
	if err != nil {
		store.Close()
		return nil, err
	}
	return &OfflineLog{NodeID: info.NodeID, ClusterID: info.ClusterID, store: store, snaps: snaps}, nil
}

// Close closes the bolt file.
func (o *OfflineLog) Close() error { return o.store.Close() }

// Entries calls fn with every entry of the log, oldest first, each
// authenticated and opened. An entry that fails is an error naming it.
func (o *OfflineLog) Entries(fn func(l *raft.Log) error) error {
	first, err := o.store.FirstIndex()
	if err != nil {
		return err
	}
	last, err := o.store.LastIndex()
	if err != nil {
		return err
	}
	for i := first; i != 0 && i <= last; i++ {
		var l raft.Log
		if err := o.store.GetLog(i, &l); err != nil {
			return err
		}
		if err := fn(&l); err != nil {
			return err
		}
	}
	return nil
}

// Snapshots calls fn with every snapshot, newest first, and its state as
// the JSON snapshot document (fsm.SnapshotJSON), each authenticated whole
// before fn sees it.
func (o *OfflineLog) Snapshots(fn func(meta *raft.SnapshotMeta, data []byte) error) error {
	if !fileExists(o.snaps.Dir()) {
		return nil // no snapshot taken yet
	}
	if err := o.snaps.Verify(); err != nil {
		return err
	}
	metas, err := o.snaps.List()
	if err != nil {
		return err
	}
	for _, m := range metas {
		meta, rc, err := o.snaps.Open(m.ID)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		// Tools show the state as the format 1 JSON document, whatever
		// format raft's snapshot holds.
		data, err := fsm.SnapshotJSON(raw)
		clear(raw)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", m.ID, err)
		}
		err = fn(meta, data)
		clear(data)
		if err != nil {
			return err
		}
	}
	return nil
}
