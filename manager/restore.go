package manager

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/backup"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"
)

// restoreMarker, in raft/, says the snapshot there came from a backup: the
// first start replaces its placeholder configuration with this node alone
// at its real address (raft.RecoverCluster), then deletes the marker.
const restoreMarker = "restored-from-backup"

// raftCurrentTermKey is raft's StableStore key for the current term.
const raftCurrentTermKey = "CurrentTerm"

// RestoreConfig is an offline restore of a backup into a new data dir.
type RestoreConfig struct {
	// DataDir is the directory to build; it must be missing or empty.
	DataDir string
	// Backup is the backup file's path.
	Backup string
	// UnlockKey (text) opens a backup sealed under an unlock key;
	// Passphrase one sealed with a passphrase.
	UnlockKey  string
	Passphrase []byte
	// Progress, if set, is told how far reading the backup has got.
	Progress func(done, total int64)
}

// Validate checks that the config names a target, a file and a key.
func (c RestoreConfig) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("no target data dir"))
	}
	if c.Backup == "" {
		errs = append(errs, errors.New("no backup file"))
	}
	if c.UnlockKey == "" && len(c.Passphrase) == 0 {
		errs = append(errs, errors.New("neither an unlock key nor a passphrase"))
	}
	return errors.Join(errs...)
}

// RestoreResult describes a restored data dir.
type RestoreResult struct {
	NodeID    string
	ClusterID string
	Index     uint64
	Autolock  bool
	Nodes     int
	Secrets   int
}

// Errors of restoring.
var (
	// ErrTargetNotEmpty refuses a target data dir that holds anything.
	ErrTargetNotEmpty = errors.New("the target data dir is not empty")
	// ErrWrongBackupKey is an unlock key that does not open the backup,
	// in the words the CLI contract uses for a wrong unlock key.
	ErrWrongBackupKey = errors.New("invalid unlock key")
	// ErrWrongPassphrase is a passphrase that does not open the backup.
	ErrWrongPassphrase = errors.New("wrong passphrase")
)

// ReadBackupHeader reads a backup file's clear header: how its key is
// derived and what state it holds.
func ReadBackupHeader(path string) (*backup.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return backup.ReadHeader(bufio.NewReader(f))
}

// RestoreBackup builds cfg.DataDir from a backup, offline, so that
// `holdfast daemon --data-dir DIR` starts it as the only manager of the
// backed-up cluster (locked first when the state has autolock on). It
// authenticates the whole file before it writes anything: a wrong key, a
// damaged or truncated file leaves DataDir as it was. The node gets a new
// ID and a certificate issued by the CA in the backup; the nodes of the
// old cluster stay in the state, as with `init --force-new-cluster`.
func RestoreBackup(ctx context.Context, cfg RestoreConfig) (*RestoreResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := checkEmptyDir(cfg.DataDir); err != nil {
		return nil, err
	}
	data, h, err := readBackup(cfg)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	st, index, err := fsm.DecodeSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Backup, err)
	}
	if st.Cluster == nil || st.Cluster.ID != h.Meta.ClusterID || index != h.Meta.Index {
		return nil, fmt.Errorf("%s: the state does not match its header", cfg.Backup)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	now := time.Now().UTC()
	root, err := ca.ParseRoot(st.Cluster.RootCertPEM, st.Cluster.RootKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("the backup's CA: %w", err)
	}
	nodeID := ca.NewID()
	certPEM, keyPEM, rec, err := issueSelf(root, ca.Identity{NodeID: nodeID, Role: ca.RoleManager, ClusterID: st.Cluster.ID}, st.Cluster.Settings.CertExpiry, now)
	if err != nil {
		return nil, err
	}
	// The address is filled in by the node itself once it runs
	// (fillOwnAddr): only the daemon knows where it listens.
	st.Nodes[nodeID] = &fsm.Node{ID: nodeID, Role: roleManager, CreatedAt: now, CertExpiresAt: rec.NotAfter, CertSerial: rec.Serial, CertKeySHA256: rec.KeySHA256}
	snap, err := fsm.EncodeSnapshot(st, index)
	if err != nil {
		return nil, err
	}
	defer clear(snap)

	existed := fileExists(cfg.DataDir)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.DataDir, err)
	}
	n := &Node{cfg: Config{DataDir: cfg.DataDir}, logger: slog.New(slog.DiscardHandler), keyFiles: keyfiles.New(cfg.DataDir)}
	if st.Cluster.Settings.Autolock {
		uk, err := autolock.ParseKey(st.Cluster.UnlockKey)
		if err != nil {
			return nil, fmt.Errorf("the backup's unlock key: %w", err)
		}
		n.keyFiles.SetKEK(uk.KEK())
	}
	info := &nodeInfo{NodeID: nodeID, ClusterID: st.Cluster.ID, Role: roleManager}
	if err := n.writeRestored(info, root.CertPEM(), certPEM, keyPEM, snap, index, h.Meta.Term); err != nil {
		// Leave the target as it was found.
		if existed {
			_ = n.wipeState()
		} else {
			_ = os.RemoveAll(cfg.DataDir)
		}
		return nil, err
	}
	return &RestoreResult{NodeID: nodeID, ClusterID: st.Cluster.ID, Index: index, Autolock: st.Cluster.Settings.Autolock,
		Nodes: len(st.Nodes), Secrets: st.Secrets.Len()}, nil
}

// checkEmptyDir refuses a target that exists and holds anything.
func checkEmptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("target data dir: %w", err)
	case len(ents) > 0:
		return fmt.Errorf("%w: %s holds %s; restore into a new or empty directory", ErrTargetNotEmpty, dir, ents[0].Name())
	}
	return nil
}

// readBackup opens the backup with the configured key and returns its
// plaintext only once the whole file has authenticated.
func readBackup(cfg RestoreConfig) ([]byte, *backup.Header, error) {
	f, err := os.Open(cfg.Backup)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 256<<10)
	h, err := backup.ReadHeader(br)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.Backup, err)
	}
	if h.FileSize() != fi.Size() {
		return nil, nil, fmt.Errorf("%s: %w: the file is %d bytes; its header says %d", cfg.Backup, backup.ErrTampered, fi.Size(), h.FileSize())
	}
	var key seal.Key
	switch h.KDF {
	case backup.KDFUnlockKey:
		if cfg.UnlockKey == "" {
			return nil, nil, fmt.Errorf("%s is sealed under the cluster's unlock key: give it on stdin or with --key-file FILE", cfg.Backup)
		}
		uk, err := autolock.ParseKey(cfg.UnlockKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrWrongBackupKey, err)
		}
		if key, err = h.KeyFromUnlockKey(uk); err != nil {
			return nil, nil, fmt.Errorf("%w: it does not open %s (the backup was sealed under the unlock key current when it was made)", ErrWrongBackupKey, cfg.Backup)
		}
	default:
		if len(cfg.Passphrase) == 0 {
			return nil, nil, fmt.Errorf("%s is sealed with a passphrase: give it with --passphrase-file FILE", cfg.Backup)
		}
		if key, err = h.KeyFromPassphrase(cfg.Passphrase); err != nil {
			return nil, nil, fmt.Errorf("%w: it does not open %s", ErrWrongPassphrase, cfg.Backup)
		}
	}
	r, err := backup.NewReader(br, h, key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.Backup, err)
	}
	var buf bytes.Buffer
	buf.Grow(int(min(h.Meta.Size, fi.Size())))
	var w io.Writer = &buf
	if cfg.Progress != nil {
		w = &progressWriter{w: &buf, total: h.Meta.Size, report: cfg.Progress}
	}
	if _, err := io.Copy(w, r); err != nil {
		clear(buf.Bytes())
		return nil, nil, fmt.Errorf("%s: %w; nothing was restored", cfg.Backup, err)
	}
	return buf.Bytes(), h, nil
}

type progressWriter struct {
	w      io.Writer
	done   int64
	total  int64
	report func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.report(p.done, p.total)
	return n, err
}

// writeRestored writes the data dir: certificates and keys (wrapped under
// the KEK when autolock is on), the raft snapshot with a placeholder
// configuration of this node alone, the restore marker, and node.json
// last (a dir without it is not a node).
func (n *Node) writeRestored(info *nodeInfo, rootPEM, certPEM, keyPEM, snap []byte, index, term uint64) error {
	if err := n.keyFiles.SaveCerts(info.NodeID, &keyfiles.Certs{RootPEM: rootPEM, CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		return err
	}
	kf := raftlog.KeyFile{Current: seal.NewKey()}
	if err := n.keyFiles.SaveDEKs(info.NodeID, kf); err != nil {
		return err
	}
	opts := raftlog.Options{ClusterID: info.ClusterID, NodeID: info.NodeID, Keys: kf.Keyring()}
	store, err := raftlog.Open(n.raftDir(), opts)
	if err != nil {
		return err
	}
	// Raft's term goes on from the backup's, so entries of the new
	// cluster never carry a lower term than the snapshot's.
	err = store.SetUint64([]byte(raftCurrentTermKey), term)
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write raft term: %w", err)
	}
	snaps, err := raftlog.NewSnapshotStore(n.raftDir(), 2, opts)
	if err != nil {
		return err
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(info.NodeID), Address: "restored-from-backup"}}}
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, 1, nil)
	if err != nil {
		return err
	}
	if _, err := sink.Write(snap); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(n.raftDir(), restoreMarker), []byte("this node was restored from a backup; its first start makes it the only manager\n"), 0o600); err != nil {
		return err
	}
	return n.saveNodeInfo(info)
}

// restorePending reports whether raft/ holds a snapshot restored from a
// backup that has not been started yet.
func (n *Node) restorePending() bool {
	return fileExists(filepath.Join(n.raftDir(), restoreMarker))
}

// restoreDone deletes the restore marker once raft's configuration is
// this node alone at its real address.
func (n *Node) restoreDone() error {
	if err := os.Remove(filepath.Join(n.raftDir(), restoreMarker)); err != nil {
		return fmt.Errorf("remove restore marker: %w", err)
	}
	d, err := os.Open(n.raftDir())
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fillOwnAddr records this manager's address in its node record when the
// record has none, as after a restore (only the running daemon knows
// where it listens). It retries until it is applied or ctx ends.
func (n *Node) fillOwnAddr(ctx context.Context, inc *incarnation, rn *raftNode) {
	for {
		ch := rn.fsm.Changed()
		empty := false
		rn.fsm.Read(func(s *fsm.State, _ uint64) {
			rec, ok := s.Nodes[inc.info.NodeID]
			empty = ok && rec.Addr == ""
		})
		if !empty {
			return
		}
		if err := n.writes.apply(ctx, &fsm.NodeUpdate{ID: inc.info.NodeID, Addr: inc.info.AdvertiseAddr}); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(200 * time.Millisecond):
		}
	}
}
