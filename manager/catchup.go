package manager

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/backoff"
)

// catchUp is a manager's progress, since its raft started (a start, an
// unlock, a join or a promotion), towards what the leader had committed
// then: until it has applied that far, its state lags behind what clients
// have already seen, and it reports state catching-up. Its zero value is
// "target not known yet". It is safe for concurrent use.
type catchUp struct {
	// target is the leader's commit index read after raft started; 0
	// while unknown.
	target atomic.Uint64
	// done is set once the state has applied target; it never goes back.
	done atomic.Bool
}

// progress returns whether the manager still catches up, and the target
// (0 when unknown), given the index its state has applied.
func (c *catchUp) progress(applied uint64) (catching bool, target uint64) {
	if c.done.Load() {
		return false, c.target.Load()
	}
	target = c.target.Load()
	return catchingUp(false, target, applied), target
}

// catchingUp is the decision: a manager catches up until it has learnt
// the leader's commit index (target, 0 while unknown) and applied it.
func catchingUp(done bool, target, applied uint64) bool {
	return !done && (target == 0 || applied < target)
}

// catchUpTracker learns a manager's catch-up target, the leader's commit
// index (a read index: on the leader its own commit index once
// leader.ready is applied), and marks the catch-up done once the state
// has applied it. It runs on every manager; once done, it does nothing.
type catchUpTracker struct {
	progress *catchUp
	state    interface {
		Index() uint64
		Changed() <-chan struct{}
	}
	// readIndex asks the leader (or this node, leading) for its commit
	// index; it fails while there is no leader.
	readIndex func(ctx context.Context) (uint64, error)
	// leaderChanged is closed at raft's next change of leader: a failed
	// read index is retried then, not only after a backoff.
	leaderChanged func() <-chan struct{}
	logger        interface{ Info(msg string, args ...any) }
}

func (c *catchUpTracker) Run(ctx context.Context) error {
	if c.progress.done.Load() {
		return nil
	}
	bo := backoff.New(50*time.Millisecond, time.Second)
	for c.progress.target.Load() == 0 {
		var changed <-chan struct{}
		if c.leaderChanged != nil {
			changed = c.leaderChanged()
		}
		idx, err := c.readIndex(ctx)
		if err == nil {
			// A read index is at least 1 in a cluster that has one: the
			// first configuration entry.
			c.progress.target.Store(max(idx, 1))
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(bo.Next()):
		}
	}
	target := c.progress.target.Load()
	for {
		ch := c.state.Changed()
		if applied := c.state.Index(); applied >= target {
			c.progress.done.Store(true)
			c.logger.Info("caught up with the leader", "applied_index", applied, "target_index", target)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// newCatchUpTracker builds manager rn's catch-up tracker.
func newCatchUpTracker(n *Node, rn *raftNode) *catchUpTracker {
	return &catchUpTracker{
		progress: &rn.catchUp,
		state:    rn.fsm,
		readIndex: func(ctx context.Context) (uint64, error) {
			var index uint64
			err := n.writes.onLeader(ctx,
				func(ctx context.Context, rn *raftNode) error {
					ri, err := n.writes.readIndexLocal(ctx, rn)
					if err == nil {
						index = ri.Index
					}
					return err
				},
				func(ctx context.Context, c *api.Client) error {
					ri, err := c.ReadIndex(ctx)
					if err == nil {
						index = ri.Index
					}
					return err
				})
			return index, err
		},
		leaderChanged: rn.leaderChanged,
		logger:        n.logger,
	}
}

// errCatchingUp answers a read of this manager's own view (keys ls)
// while it catches up: the view may lack what clients have already seen.
func errCatchingUp(applied, target uint64) error {
	if target == 0 {
		return api.Errorf(api.CodeUnavailable, "this manager is catching up with the cluster (applied index %d; the leader's commit index is not known yet: is there a leader?); try again in a moment", applied)
	}
	return api.Errorf(api.CodeUnavailable, "this manager is catching up with the cluster (applied index %d of %d); try again in a moment", applied, target)
}

// gatedFSM is the FSM raft applies to, with Config.applyGate (tests only)
// called before each batch: a test holds a manager's applying there to
// watch it catch up.
type gatedFSM struct {
	*fsm.FSM
	gate func()
}

func (g gatedFSM) Apply(l *raft.Log) any {
	g.gate()
	return g.FSM.Apply(l)
}

func (g gatedFSM) ApplyBatch(logs []*raft.Log) []any {
	g.gate()
	return g.FSM.ApplyBatch(logs)
}

// raftFSM is f as raft applies to it: f itself, or gated in tests.
func (c Config) raftFSM(f *fsm.FSM) raft.FSM {
	if c.applyGate == nil {
		return f
	}
	return gatedFSM{FSM: f, gate: c.applyGate}
}
