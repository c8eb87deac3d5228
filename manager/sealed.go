package manager

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"
)

// loadOrCreateKeys returns the node's DEKs. A node without a raft log gets
// a new DEK; a raft log without its key file is an error (the log cannot be
// read without it).
func (n *Node) loadOrCreateKeys(nodeID string) (raftlog.KeyFile, error) {
	kf, err := n.keyFiles.LoadDEKs(nodeID)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kf, err
	}
	if _, err := os.Stat(filepath.Join(n.dir.raftDir(), raftlog.DBFile)); err == nil {
		return raftlog.KeyFile{}, fmt.Errorf("%s is missing but %s exists: the raft log cannot be opened without its key; restore this node from its peers (stop it, wipe %s, and join again) or from a backup", n.dir.path(keyfiles.DEKFile), filepath.Join(n.dir.raftDir(), raftlog.DBFile), n.cfg.DataDir)
	}
	kf = raftlog.KeyFile{Current: seal.NewKey()}
	if err := n.keyFiles.SaveDEKs(nodeID, kf); err != nil {
		return raftlog.KeyFile{}, err
	}
	return kf, nil
}

// openSealedLog opens the sealed log and snapshot store, finishes a DEK
// rotation a crash interrupted, and checks every entry and the newest
// snapshot, so a node whose log was tampered with refuses to start, with
// an error naming the file and index, instead of serving wrong state.
func (n *Node) openSealedLog(clusterID, nodeID string) (*raftlog.Store, *raftlog.SnapshotStore, error) {
	kf, err := n.loadOrCreateKeys(nodeID)
	if err != nil {
		return nil, nil, err
	}
	opts := raftlog.Options{ClusterID: clusterID, NodeID: nodeID, Keys: kf.Keyring(), Logger: n.logger.With("component", "raftlog")}
	store, err := raftlog.Open(n.dir.raftDir(), opts)
	if err != nil {
		return nil, nil, fmt.Errorf("open raft log: %w", err)
	}
	snaps, err := raftlog.NewSnapshotStore(n.dir.raftDir(), 2, opts)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("open snapshots: %w", err)
	}
	if len(kf.Previous) > 0 {
		n.logger.Info("finishing an interrupted DEK rotation")
		if err := dekRotatorOf(n.keyFiles, nodeID, store, snaps).Resume(context.Background()); err != nil {
			store.Close()
			return nil, nil, fmt.Errorf("finish DEK rotation: %w", err)
		}
	}
	if err := n.verifySealedLog(store, snaps); err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, snaps, nil
}

// verifySealedLog opens every stored entry and every snapshot, and checks
// that the log's first entry follows a snapshot (a compacted log whose
// snapshot is gone cannot rebuild the state) and that no entry after the
// newest snapshot is missing. Entries the newest snapshot covers may have
// gaps: a follower that installs a snapshot past its log keeps raft's
// trailing entries from before it, and the entries after the snapshot
// then start further on.
func (n *Node) verifySealedLog(store *raftlog.Store, snaps *raftlog.SnapshotStore) error {
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
			store.Path(), first, snaps.Dir(), n.cfg.DataDir)
	}
	return nil
}

// RotateDEK replaces this manager's DEK: new entries are sealed under a new
// key, every entry and snapshot sealed under the old one is re-sealed, the
// bolt file is compacted, and then the old key is deleted from the key
// file. Afterwards the old DEK opens nothing in any file.
func (n *Node) RotateDEK(ctx context.Context) error {
	inc := n.current()
	if inc == nil || inc.rn() == nil || inc.rn().store == nil {
		return fmt.Errorf("this node has no sealed raft log")
	}
	return newDEKRotator(n, inc.info.NodeID, inc.rn()).Rotate(ctx)
}
