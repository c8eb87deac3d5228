package manager

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"
)

// sealCounter is what the DEK rotator reads of the sealed log: whether the
// DEK has sealed its share of records (raftlog's threshold for random
// nonces). *raftlog.Store is one.
type sealCounter interface {
	NeedsRotation() bool
	SealedCount() uint64
}

// dekRotator rotates a manager's DEK: every check interval when it has
// sealed too many records for random nonces to stay safe, and on demand
// (sealedLog.rotateDEK, a KEK change). One rotation at a time (mu).
type dekRotator struct {
	log     sealCounter
	rotator raftlog.Rotator
	mu      *sync.Mutex
	every   time.Duration
	logger  *slog.Logger
}

func (d *dekRotator) Run(ctx context.Context) error {
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if !d.log.NeedsRotation() {
			continue
		}
		d.logger.Info("rotating the DEK: it has sealed its share of records", "sealed", d.log.SealedCount())
		if err := d.Rotate(ctx); err != nil && ctx.Err() == nil {
			d.logger.Error("DEK rotation failed; will retry", "err", err)
		}
	}
}

// Rotate replaces the DEK now.
func (d *dekRotator) Rotate(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.RotateLocked(ctx)
}

// RotateLocked replaces the DEK; the caller holds mu.
func (d *dekRotator) RotateLocked(ctx context.Context) error {
	return d.rotator.Rotate(ctx, seal.NewKey())
}

// dekRotatorOf rotates nodeID's DEK, writing the key file through the
// key-file owner so it stays wrapped under the current KEK.
func dekRotatorOf(files *keyfiles.Store, nodeID string, store *raftlog.Store, snaps *raftlog.SnapshotStore) raftlog.Rotator {
	return raftlog.Rotator{Store: store, Snapshots: snaps, Save: func(kf raftlog.KeyFile) error { return files.SaveDEKs(nodeID, kf) }}
}

// newDEKRotator builds manager rn's DEK rotator; nil with a plain log.
func newDEKRotator(n *Node, nodeID string, rn *raftNode) *dekRotator {
	if rn.store == nil {
		return nil
	}
	return &dekRotator{
		log:     rn.store,
		rotator: dekRotatorOf(n.keyFiles, nodeID, rn.store, rn.snaps),
		mu:      &rn.rotateMu,
		every:   n.cfg.DEKCheckInterval,
		logger:  n.logger,
	}
}
