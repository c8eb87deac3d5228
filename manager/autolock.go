package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/seal"
)

// The KEK is held only in memory, by the key-file owner (n.keyFiles):
// derived from the unlock key the operator gave (or the cluster's
// replicated key), never written anywhere.

// lockState is a locked node: its identity, and the unlock attempts.
type lockState struct {
	info    *nodeInfo
	shares  autolock.ShareSet
	backoff *autolock.Backoff
}

func (n *Node) locked() *lockState {
	n.incMu.RLock()
	defer n.incMu.RUnlock()
	return n.lock
}

func (n *Node) setLocked(l *lockState) {
	n.incMu.Lock()
	n.lock = l
	n.incMu.Unlock()
}

// lockedOnly answers api.ErrLocked on a locked node (locked returns
// non-nil) for everything but status, unlock and health.
func lockedOnly(locked func() *lockState, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if locked() != nil && r.URL.Path != "/v1/status" && r.URL.Path != "/v1/unlock" && r.URL.Path != "/v1/health" {
			api.WriteError(w, api.ErrLocked)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// errInvalidUnlockKey is the answer to a key that does not open this
// node's files.
var errInvalidUnlockKey = api.Errorf(api.CodeUnauthenticated, "invalid unlock key: it does not open this node's keys; the node stays locked")

// errUnlockThrottled answers unlock attempts that come too soon after
// wrong keys.
var errUnlockThrottled = api.Errorf(api.CodeRateLimited, "too many wrong unlock keys: try again shortly")

// Unlock opens a locked node with its unlock key, or one share of it at a
// time, and starts it: raft, mTLS and all, without a restart.
func (n *Node) Unlock(ctx context.Context, req api.UnlockRequest) (resp *api.UnlockResponse, err error) {
	defer func() { metricUnlockAttempt(resp, err) }()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return nil, errStopping
	}
	l := n.locked()
	if l == nil {
		if n.current() != nil {
			return nil, api.Errorf(api.CodeConflict, "this node is not locked")
		}
		return nil, api.ErrUninitialized
	}
	if err := l.backoff.Wait(ctx); err != nil {
		return nil, errUnlockThrottled
	}
	text := strings.TrimSpace(req.Key)
	var key autolock.Key
	if strings.HasPrefix(strings.ToUpper(text), autolock.SharePrefix[:6]) {
		sh, err := autolock.ParseShare(text)
		if err != nil {
			l.backoff.Fail()
			return nil, api.Errorf(api.CodeInvalidArgument, "invalid unlock key share: %v", err)
		}
		have, need, err := l.shares.Add(sh)
		if err != nil {
			l.backoff.Fail()
			return nil, api.Errorf(api.CodeInvalidArgument, "invalid unlock key share: %v", err)
		}
		k, ok := l.shares.Key()
		if !ok {
			return &api.UnlockResponse{State: api.StateLocked, Shares: have, SharesNeeded: need}, nil
		}
		key = k
	} else {
		k, err := autolock.ParseKey(text)
		if err != nil {
			l.backoff.Fail()
			return nil, api.Errorf(api.CodeInvalidArgument, "invalid unlock key: %v", err)
		}
		key = k
	}
	if err := n.unlockWith(ctx, l, key); err != nil {
		return nil, err
	}
	return &api.UnlockResponse{State: api.StateReady}, nil
}

// unlockWith tries key on the node's wrapped files and starts the node.
// n.mu must be held.
func (n *Node) unlockWith(ctx context.Context, l *lockState, key autolock.Key) error {
	kek := key.KEK()
	if err := n.keyFiles.Unlock(l.info.NodeID, kek); err != nil {
		if errors.Is(err, autolock.ErrInvalidKey) {
			l.shares.Reset()
			l.backoff.Fail()
			n.logger.Warn("wrong unlock key")
			return errInvalidUnlockKey
		}
		return api.Errorf(api.CodeInternal, "%v", err)
	}
	l.backoff.Succeed()
	// start may move the addresses (a restart at a new one); the locked
	// state's info is read by status until the node is unlocked.
	info := *l.info
	if err := n.start(context.Background(), &info, raftResume); err != nil {
		n.keyFiles.SetKEK(seal.Key{})
		return fmt.Errorf("unlocked, but the node failed to start: %w", err)
	}
	n.setLocked(nil)
	n.logger.Info("node unlocked")
	return nil
}

// unlockByCommand runs the configured command and unlocks with the key it
// prints. The key goes from its stdout to memory, never to disk or logs.
func (n *Node) unlockByCommand(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", n.cfg.UnlockKeyCommand)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		n.logger.Error("unlock key command failed; the node stays locked", "err", err, "stderr", strings.TrimSpace(errOut.String()))
		return
	}
	_, err := n.Unlock(ctx, api.UnlockRequest{Key: out.String()})
	out.Reset()
	if err != nil {
		n.logger.Error("unlock key command: the key it printed did not unlock the node", "err", err)
	}
}

// UnlockKey shows the cluster's current unlock key.
func (a *clusterAPI) UnlockKey(ctx context.Context) (*api.UnlockKeyResponse, error) {
	var out api.UnlockKeyResponse
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		if !s.Cluster.Settings.Autolock {
			return errAutolockOff
		}
		out.UnlockKey = s.Cluster.UnlockKey
		return nil
	})
	return &out, err
}

var errAutolockOff = api.Errorf(api.CodeInvalidArgument, "autolock is off; turn it on with 'holdfast update --autolock=true'")

// RotateUnlockKey replaces the unlock key (and, with shares, prints it
// split m-of-n). Every manager re-wraps its keys under the new KEK.
func (a *clusterAPI) RotateUnlockKey(ctx context.Context, req api.RotateUnlockKeyRequest) (*api.UnlockKeyResponse, error) {
	if req.Shares != 0 || req.Threshold != 0 {
		if req.Threshold < 2 || req.Shares < req.Threshold || req.Shares > 255 {
			return nil, api.Errorf(api.CodeInvalidArgument, "shares: want 2 <= --threshold <= --shares <= 255 (got %d of %d)", req.Threshold, req.Shares)
		}
	}
	on := false
	if err := a.writes.readState(ctx, func(s *fsm.State) error { on = s.Cluster.Settings.Autolock; return nil }); err != nil {
		return nil, err
	}
	if !on {
		return nil, errAutolockOff
	}
	return setAutolock(ctx, a.writes, true, req.Shares, req.Threshold)
}

// setAutolock turns autolock on with a new key (also a rotation) or off.
func setAutolock(ctx context.Context, w *writePath, on bool, shares, threshold int) (*api.UnlockKeyResponse, error) {
	cmd := &fsm.AutolockSet{Enabled: on}
	out := &api.UnlockKeyResponse{}
	if on {
		key := autolock.NewKey()
		cmd.UnlockKey = key.String()
		out.UnlockKey = key.String()
		if shares > 0 {
			parts, err := autolock.Split(key, shares, threshold)
			if err != nil {
				return nil, api.Errorf(api.CodeInvalidArgument, "split the unlock key: %v", err)
			}
			for _, p := range parts {
				out.Shares = append(out.Shares, p.String())
			}
			out.Threshold = threshold
		}
	}
	if err := w.apply(ctx, cmd); err != nil {
		return nil, err
	}
	return out, nil
}
