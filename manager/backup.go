package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/backup"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/seal"
)

// backupArgon2 are the Argon2id costs of passphrase-sealed backups; tests
// lower them.
var backupArgon2 = backup.DefaultArgon2

// errBackupNeedsPassphrase answers a backup request without a passphrase
// on a cluster without an unlock key.
var errBackupNeedsPassphrase = api.Errorf(api.CodeInvalidArgument,
	"autolock is off, so there is no unlock key to seal the backup under: give a passphrase with --passphrase-file FILE")

// SaveSnapshot makes a sealed backup of the replicated state as of a
// linearizable point: every write acknowledged before the call is in it.
// The state is sealed here, in the daemon, so its plaintext never leaves
// the process: under a key derived from the cluster's current unlock key,
// or from req.Passphrase (Argon2id) when one is given.
func (a *backupAPI) SaveSnapshot(ctx context.Context, req api.SnapshotRequest) (*api.SnapshotStream, error) {
	rn, err := a.writes.linearize(ctx)
	if err != nil {
		return nil, err
	}
	data, index, err := rn.fsm.SnapshotData()
	if err != nil {
		return nil, err
	}
	st, _, err := fsm.DecodeSnapshot(data)
	if err != nil {
		return nil, err
	}
	if st.Cluster == nil {
		return nil, api.ErrUninitialized
	}
	meta := backup.Meta{
		ClusterID: st.Cluster.ID, Index: index, Term: rn.r.CurrentTerm(),
		CreatedAt: a.now().UTC().Truncate(time.Second), Autolock: st.Cluster.Settings.Autolock,
		Size: int64(len(data)),
	}
	var (
		h   *backup.Header
		key seal.Key
	)
	switch {
	case req.Passphrase != "":
		h, key, err = backup.ForPassphrase([]byte(req.Passphrase), meta, backupArgon2)
		if errors.Is(err, backup.ErrWeakPassphrase) {
			return nil, api.Wrap(api.CodeInvalidArgument, err)
		}
	case st.Cluster.UnlockKey != "":
		var uk autolock.Key
		if uk, err = autolock.ParseKey(st.Cluster.UnlockKey); err != nil {
			return nil, fmt.Errorf("the cluster's unlock key: %w", err)
		}
		h, key, err = backup.ForUnlockKey(uk, meta)
	default:
		return nil, errBackupNeedsPassphrase
	}
	if err != nil {
		return nil, err
	}
	a.logger.Info("backup made", "index", index, "bytes", h.FileSize(), "kdf", h.KDF.String())
	return &api.SnapshotStream{Size: h.FileSize(), WriteTo: func(w io.Writer) error {
		defer clear(data)
		bw, err := backup.NewWriter(w, h, key)
		if err != nil {
			return err
		}
		if _, err := bw.Write(data); err != nil {
			return err
		}
		return bw.Close()
	}}, nil
}
