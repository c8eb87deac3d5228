package manager

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/backoff"
)

// Errors of the write and read paths.
var (
	errNoLeader = api.Errorf(api.CodeNoLeader, "no leader: the cluster has no quorum right now; check that a majority of managers is running")
	// errMisdirected is what a node that is no longer leader answers to a
	// forwarded request it did not carry out; the sender retries.
	errMisdirected = api.Errorf(api.CodeNotLeader, "this node is not the leader")
)

// proposer is the write path as the API adapters and the leader loops use
// it: apply a command (on the leader, or forwarded to it), run an
// operation on the leader, and read a linearizable state. *writePath is
// the one implementation.
type proposer interface {
	apply(ctx context.Context, cmd fsm.Command) error
	onLeader(ctx context.Context, local func(context.Context, *raftNode) error, remote func(context.Context, *api.Client) error) error
	linearize(ctx context.Context) (*raftNode, error)
	readState(ctx context.Context, fn func(s *fsm.State) error) error
}

var _ proposer = (*writePath)(nil)

// writePath is the node's write path. A write goes to raft when this node
// leads, proposed in batches (propose.go), and is forwarded to the leader
// otherwise, in batches too (forward.go). It depends on nothing but the
// incarnation running now, which gives it raft, the FSM and the node API
// client, and on the write timeouts of the node's config.
type writePath struct {
	// forwardTimeout bounds waiting for a leader and a forwarded write;
	// applyTimeout one proposal to raft.
	forwardTimeout, applyTimeout time.Duration
	// current returns the running incarnation, nil if none.
	current func() *incarnation
}

func newWritePath(cfg Config, current func() *incarnation) *writePath {
	return &writePath{forwardTimeout: cfg.ForwardTimeout, applyTimeout: cfg.ApplyTimeout, current: current}
}

// managerRaft returns the running raft, or the error to answer with.
func (w *writePath) managerRaft() (*incarnation, *raftNode, error) {
	inc := w.current()
	if inc == nil {
		return nil, nil, api.ErrUninitialized
	}
	if inc.rn() == nil {
		return inc, nil, api.ErrNotManager
	}
	return inc, inc.rn(), nil
}

// apply proposes cmd and returns once it is applied (on the leader), or why
// it was not. On a follower it forwards the command to the leader.
func (w *writePath) apply(ctx context.Context, cmd fsm.Command) error {
	b, err := fsm.Encode(cmd)
	if err != nil {
		return api.Wrap(api.CodeInvalidArgument, err)
	}
	return w.onLeaderAt(ctx,
		func(ctx context.Context, rn *raftNode) error { return w.applyLocal(ctx, rn, b) },
		func(ctx context.Context, inc *incarnation, addr string) error {
			return inc.forwarderFor(addr, peerClient(inc, addr), w.forwardTimeout).apply(ctx, b)
		})
}

// applyLocal applies encoded command b on this node, which must lead. It
// is proposed together with the others that arrive meanwhile (propose.go).
func (w *writePath) applyLocal(ctx context.Context, rn *raftNode, b []byte) (err error) {
	defer func(start time.Time) { metricApplied(start, err) }(time.Now())
	return rn.prop.apply([][]byte{b})[0]
}

// fsmError gives an FSM error its HTTP status.
func fsmError(err error) error {
	if err == nil {
		return nil
	}
	if isSecretsError(err) {
		return secretError(err)
	}
	code := api.CodeInvalidArgument
	switch {
	case errors.Is(err, fsm.ErrNodeNotFound):
		code = api.CodeNotFound
	case errors.Is(err, fsm.ErrAlreadyInitialized), errors.Is(err, fsm.ErrNodeExists), errors.Is(err, fsm.ErrLastManager), errors.Is(err, fsm.ErrAddrInUse):
		code = api.CodeConflict
	case errors.Is(err, fsm.ErrNodeRemoved):
		code = api.CodePermissionDenied
	}
	return api.Wrap(code, err)
}

// onLeader runs local when this node leads, else remote against the
// leader's node API. It waits for a leader (until ctx or ForwardTimeout
// ends) and retries only where nothing was carried out: no leader yet, the
// leader unreachable before the request was sent, or a former leader that
// answered "not the leader".
func (w *writePath) onLeader(ctx context.Context, local func(context.Context, *raftNode) error, remote func(context.Context, *api.Client) error) error {
	return w.onLeaderAt(ctx, local, func(ctx context.Context, inc *incarnation, addr string) error {
		return remote(ctx, peerClient(inc, addr))
	})
}

// onLeaderAt is onLeader for a remote half that needs the incarnation and
// the leader's address rather than a client.
func (w *writePath) onLeaderAt(ctx context.Context, local func(context.Context, *raftNode) error, remote func(context.Context, *incarnation, string) error) error {
	ctx, cancel := context.WithTimeout(ctx, w.forwardTimeout)
	defer cancel()
	var inc *incarnation
	var rn *raftNode
	return toLeader(ctx,
		func() (leaderView, error) {
			var err error
			if inc, rn, err = w.managerRaft(); err != nil {
				return nil, err
			}
			return rn, nil
		},
		func(ctx context.Context) error { return local(ctx, rn) },
		func(ctx context.Context, addr string) error { return remote(ctx, inc, addr) })
}

// leaderView is what the forwarding decision asks of raft (*raftNode).
type leaderView interface {
	isLeader() bool
	// leaderInfo returns the leader's ID and address, empty if unknown.
	leaderInfo() (id, addr string)
	// leaderChanged is closed when the leader changes.
	leaderChanged() <-chan struct{}
}

// toLeader is the forwarding decision: it runs local while this node
// leads, else remote against the leader's address, until ctx ends. view
// returns raft as it is now (an error ends the call). It retries only
// where nothing was carried out: no leader yet, the leader unreachable
// before the request was sent, or a former leader (local or remote) that
// answered "not the leader" (or, locally, not ready yet). A remote
// failure after the request was sent is 503, outcome unknown.
func toLeader(ctx context.Context, view func() (leaderView, error), local func(context.Context) error, remote func(context.Context, string) error) error {
	bo := backoff.New(10*time.Millisecond, 200*time.Millisecond)
	for {
		rn, err := view()
		if err != nil {
			return err
		}
		// Taken before looking at the leader, so a change in between is
		// not missed: a write waiting for a leader goes on as soon as
		// raft has one, not at the next tick of the backoff.
		changed := rn.leaderChanged()
		var retry bool
		if rn.isLeader() {
			err = local(ctx)
			retry = errors.Is(err, errMisdirected) || errors.Is(err, errNotReady)
		} else if _, addr := rn.leaderInfo(); addr != "" {
			err = remote(ctx, addr)
			retry = isRetryable(err)
			var ae *api.Error
			if err != nil && !retry && !errors.As(err, &ae) {
				err = api.Errorf(api.CodeUnavailable, "lost contact with the leader at %s during the request; it may or may not have been carried out (%v)", addr, err)
			}
		} else {
			err, retry = errNoLeader, true
		}
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, errMisdirected) || isRetryable(err) {
				return errNoLeader
			}
			return err
		case <-changed:
		case <-time.After(bo.Next()):
		}
	}
}

// isRetryable reports whether a forwarded request certainly did nothing.
func isRetryable(err error) bool {
	if err == nil {
		return false
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code == api.CodeNotLeader
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// peerClient returns a node API client for the manager at addr.
func peerClient(inc *incarnation, addr string) *api.Client {
	return api.NewClient(inc.nodeHTTP, "https://"+addr)
}

// linearize returns once this manager's state includes every write that
// was acknowledged before it was called: the leader confirms its leadership
// and names its commit index (read index), and this node waits until it
// has applied that far.
func (w *writePath) linearize(ctx context.Context) (*raftNode, error) {
	// Bounded as a whole: a follower cut off after it got the read index
	// must not wait for ever.
	ctx, cancel := context.WithTimeout(ctx, w.forwardTimeout)
	defer cancel()
	if _, rn, err := w.managerRaft(); err == nil {
		if st := rn.fsm.NeedsUpgrade(); st != nil {
			return nil, errNeedsUpgrade(st)
		}
	}
	var index uint64
	err := w.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error {
			ri, err := w.readIndexLocal(ctx, rn)
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
	if err != nil {
		return nil, err
	}
	_, rn, err := w.managerRaft()
	if err != nil {
		return nil, err
	}
	return rn, waitApplied(ctx, rn.fsm, index)
}

// readIndexLocal is the leader's half of a linearizable read.
func (w *writePath) readIndexLocal(ctx context.Context, rn *raftNode) (*api.ReadIndex, error) {
	if rn.readyTerm.Load() != rn.r.CurrentTerm() {
		if err := rn.markReady(rn.nodeID, w.applyTimeout); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return nil, errMisdirected
			}
			return nil, errNotReady
		}
		if rn.readyTerm.Load() != rn.r.CurrentTerm() {
			return nil, errNotReady
		}
	}
	if err := rn.r.VerifyLeader().Error(); err != nil {
		return nil, errMisdirected
	}
	return &api.ReadIndex{Index: rn.r.CommitIndex()}, nil
}

// waitApplied waits until f has applied index.
func waitApplied(ctx context.Context, f *fsm.FSM, index uint64) error {
	for {
		ch := f.Changed()
		if f.Index() >= index {
			return nil
		}
		if st := f.NeedsUpgrade(); st != nil {
			return errNeedsUpgrade(st)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return api.Errorf(api.CodeUnavailable, "timed out catching up with the leader (applied %d of %d)", f.Index(), index)
		}
	}
}
