package manager

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"
)

// kekConverger re-wraps this manager's keys when the cluster's unlock key
// changes (or autolock is turned on or off): the DEK file and the TLS key
// change KEK in one step through the key-file owner, then the DEK is
// rotated, so a DEK that was stored under an old KEK, or unwrapped, is
// retired and opens nothing afterwards. Whether to is autolock.Converge's
// decision.
type kekConverger struct {
	state stateView
	self  string
	files *keyfiles.Store
	// currentKey reads the cluster's unlock key linearizably.
	currentKey func(ctx context.Context) (string, error)
	// dek is the DEK rotator; nil with a plain log.
	dek    *dekRotator
	keyLog func() raftlog.KeyFile // the sealed log's key file, when dek is set
	certMu *sync.Mutex            // one writer of the certificate files at a time
	log    *slog.Logger
}

func (c *kekConverger) Run(ctx context.Context) error {
	for {
		ch := c.state.Changed()
		var want string
		var known bool
		c.state.Read(func(s *fsm.State, _ uint64) {
			if s.Cluster != nil {
				known = true
				want = s.Cluster.UnlockKey
			}
		})
		if known && c.differs(want) {
			// The state may be a replay of history (a node catching up
			// after a restart sees every old key go by): converge only on
			// the cluster's current key, read linearizably.
			var err error
			if want, err = c.currentKey(ctx); err == nil {
				err = c.converge(ctx, want)
			}
			if err != nil && ctx.Err() == nil {
				c.log.Error("re-wrapping keys under the cluster's unlock key failed; will retry", "err", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// differs reports whether the files are not wrapped under the KEK that
// unlockKey gives (or the key does not parse).
func (c *kekConverger) differs(unlockKey string) bool {
	conv, err := autolock.Converge(unlockKey, c.files.WrappedUnder)
	return err != nil || conv.Rekey
}

// converge makes this node's KEK the one derived from unlockKey (none
// when empty), re-wrapping its files and rotating its DEK if it changes.
func (c *kekConverger) converge(ctx context.Context, unlockKey string) error {
	conv, err := autolock.Converge(unlockKey, c.files.WrappedUnder)
	if err != nil || !conv.Rekey {
		return err
	}
	c.log.Info("re-wrapping this node's keys under the cluster's unlock key", "autolock", !conv.KEK.IsZero())
	// The DEK file and the TLS key change KEK in one atomic step (the
	// key-file owner's journal), with no DEK rotation in between, so that
	// one key always opens both; then a fresh DEK retires the old one.
	if c.dek != nil {
		c.dek.mu.Lock()
		defer c.dek.mu.Unlock()
	}
	c.certMu.Lock()
	defer c.certMu.Unlock()
	var dek *raftlog.KeyFile
	if c.dek != nil {
		kf := c.keyLog()
		dek = &kf
	}
	if err := c.files.Rekey(c.self, conv.KEK, dek); err != nil {
		return err
	}
	if c.dek == nil {
		return nil
	}
	return c.dek.RotateLocked(ctx)
}

// newKEKConverger builds manager rn's unlock-key follower.
func newKEKConverger(n *Node, inc *incarnation, rn *raftNode) *kekConverger {
	c := &kekConverger{
		state: rn.fsm,
		self:  inc.info.NodeID,
		files: n.keyFiles,
		currentKey: func(ctx context.Context) (string, error) {
			var key string
			err := n.writes.readState(ctx, func(s *fsm.State) error { key = s.Cluster.UnlockKey; return nil })
			return key, err
		},
		certMu: &inc.certMu,
		log:    n.logger,
	}
	if d := newDEKRotator(n, inc.info.NodeID, rn); d != nil {
		c.dek, c.keyLog = d, rn.store.KeyFile
	}
	return c
}
