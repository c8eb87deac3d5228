package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"
)

// sealedLog is a manager's sealed raft log at rest: it opens and checks
// the log when raft starts (startRaft), finishing a DEK rotation a crash
// interrupted, and rotates the DEK on demand. Its dependencies are the
// data dir, the key-file owner and the running incarnation.
type sealedLog struct {
	dir     dataDir
	keys    *keyfiles.Store
	current func() *incarnation
	logger  *slog.Logger
}

// newSealedLog returns the sealed-log component of the node whose running
// incarnation current returns.
func newSealedLog(dir dataDir, keys *keyfiles.Store, current func() *incarnation, logger *slog.Logger) *sealedLog {
	return &sealedLog{dir: dir, keys: keys, current: current, logger: logger}
}

// loadOrCreateKeys returns the node's DEKs. A node without a raft log gets
// a new DEK; a raft log without its key file is an error (the log cannot be
// read without it).
func (s *sealedLog) loadOrCreateKeys(nodeID string) (raftlog.KeyFile, error) {
	kf, err := s.keys.LoadDEKs(nodeID)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kf, err
	}
	if _, err := os.Stat(filepath.Join(s.dir.raftDir(), raftlog.DBFile)); err == nil {
		return raftlog.KeyFile{}, fmt.Errorf("%s is missing but %s exists: the raft log cannot be opened without its key; restore this node from its peers (stop it, wipe %s, and join again) or from a backup", s.dir.path(keyfiles.DEKFile), filepath.Join(s.dir.raftDir(), raftlog.DBFile), s.dir.dir)
	}
	kf = raftlog.KeyFile{Current: seal.NewKey()}
	if err := s.keys.SaveDEKs(nodeID, kf); err != nil {
		return raftlog.KeyFile{}, err
	}
	return kf, nil
}

// open opens the sealed log and snapshot store, finishes a DEK
// rotation a crash interrupted, and checks every entry and the newest
// snapshot, so a node whose log was tampered with refuses to start, with
// an error naming the file and index, instead of serving wrong state.
func (s *sealedLog) open(clusterID, nodeID string) (*raftlog.Store, *raftlog.SnapshotStore, error) {
	kf, err := s.loadOrCreateKeys(nodeID)
	if err != nil {
		return nil, nil, err
	}
	opts := raftlog.Options{ClusterID: clusterID, NodeID: nodeID, Keys: kf.Keyring(), Logger: s.logger.With("component", "raftlog")}
	store, err := raftlog.Open(s.dir.raftDir(), opts)
	if err != nil {
		return nil, nil, fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raftlog.NewSnapshotStore(s.dir.raftDir(), 2, opts)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("open snapshots: %w", err)
	}
	if len(kf.Previous) > 0 {
		s.logger.Info("finishing an interrupted DEK rotation")
		if err := dekRotatorOf(s.keys, nodeID, store, snaps).Resume(context.Background()); err != nil {
			store.Close()
			return nil, nil, fmt.Errorf("finish DEK rotation: %w", err)
		}
	}
	if err := s.verify(store, snaps); err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, snaps, nil
}

// verify opens every stored entry and every snapshot, and checks
// that the log's first entry follows a snapshot (a compacted log whose
// snapshot is gone cannot rebuild the state) and that no entry after the
// newest snapshot is missing. Entries the newest snapshot covers may have
// gaps: a follower that installs a snapshot past its log keeps raft's
// trailing entries from before it, and the entries after the snapshot
// then start further on.
func (s *sealedLog) verify(store *raftlog.Store, snaps *raftlog.SnapshotStore) error {
	if err := snaps.Verify(); err != nil {
		return fmt.Errorf("snapshot check failed: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var covered uint64 // the newest snapshot's last index
	if len(metas) > 0 {
		covered = metas[0].Index
	}
	first, err := store.FirstIndex()
	if err != nil {
		return fmt.Errorf("read raft log: %w", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return fmt.Errorf("read raft log: %w", err)
	}
	var l raft.Log
	for i := first; i != 0 && i <= last; i++ {
		err := store.GetLog(i, &l)
		if errors.Is(err, raft.ErrLogNotFound) && i <= covered {
			continue
		}
		if err != nil {
			return fmt.Errorf("raft log check failed: entry %d: %w", i, err)
		}
	}
	if first > 1 && (len(metas) == 0 || metas[0].Index+1 < first) {
		return fmt.Errorf("%s starts at entry %d but no snapshot in %s covers the entries before it: a snapshot is missing; restore this node from its peers (stop it, wipe %s, and join again) or from a backup",
			store.Path(), first, snaps.Dir(), s.dir.dir)
	}
	return nil
}

// rotateDEK replaces this manager's DEK: new entries are sealed under a new
// key, every entry and snapshot sealed under the old one is re-sealed, the
// bolt file is compacted, and then the old key is deleted from the key
// file. Afterwards the old DEK opens nothing in any file.
func (s *sealedLog) rotateDEK(ctx context.Context) error {
	inc := s.current()
	if inc == nil || inc.rn() == nil || inc.rn().store == nil {
		return fmt.Errorf("this node has no sealed raft log")
	}
	rn := inc.rn()
	rot := &dekRotator{rotator: dekRotatorOf(s.keys, inc.info.NodeID, rn.store, rn.snaps), mu: &rn.rotateMu}
	return rot.Rotate(ctx)
}
