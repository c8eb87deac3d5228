package manager

import (
	"context"
	"sync"
	"time"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
)

// stateView is what a loop reads of a manager's replicated state: a
// consistent view under the FSM's lock, and a channel closed at the next
// applied change. *fsm.FSM is one.
type stateView interface {
	Read(fn func(s *fsm.State, index uint64))
	Changed() <-chan struct{}
}

var _ stateView = (*fsm.FSM)(nil)

// runner is a loop component: it runs until ctx ends (or it has nothing
// more to do) and says why it stopped. Run returns ctx.Err() when ctx
// ends.
type runner interface {
	Run(ctx context.Context) error
}

// runFunc adapts a loop that is still a function to runner.
type runFunc func(ctx context.Context)

func (f runFunc) Run(ctx context.Context) error { f(ctx); return ctx.Err() }

// where says on which nodes a loop runs.
type where int

const (
	everyNode    where = iota
	managersOnly       // nodes that run raft
	workersOnly
	// wholeRun: once per Node.Run, outside every incarnation (loopEnv has
	// neither inc nor rn); runRunLoops starts these.
	wholeRun
)

// loopEnv is what the table's constructors build a component from. Only
// the constructors here see the Node; the components get narrow
// dependencies (interfaces, function fields).
type loopEnv struct {
	n   *Node
	inc *incarnation
	rn  *raftNode // nil on a worker
}

// loopSpec is one row of the loop table.
type loopSpec struct {
	name  string
	where where
	// leaderOnly: the loop runs on every manager but acts only while this
	// manager leads; it checks leadership itself each time it wakes, so a
	// leader change needs no restart.
	leaderOnly bool
	// build returns the component, or nil when it has nothing to do on
	// this node.
	build func(e loopEnv) runner
}

// loopTable is every background loop of a node: those of an incarnation
// (startLoops runs the rows for the node's role; a role change stops them
// all and starts them again) and those that live as long as Run
// (runRunLoops). A function, not a variable: the role supervisor starts
// incarnations, whose loops are in the table.
func loopTable() []loopSpec {
	return []loopSpec{
		// The node itself, for as long as Run runs.
		{"role-supervisor", wholeRun, false, func(e loopEnv) runner { return newRoleSupervisor(e.n) }},
		{"expired-retry", wholeRun, false, func(e loopEnv) runner { return newExpiredRetrier(e.n) }},
		// Every node.
		{"renewal", everyNode, false, func(e loopEnv) runner { return newRenewer(e.n, e.inc) }},
		{"gossip", everyNode, false, func(e loopEnv) runner { return newGossiper(e.n, e.inc) }},
		{"ca-sync", everyNode, false, func(e loopEnv) runner { return newCASyncer(e.n, e.inc) }},
		{"own-new-address", everyNode, false, func(e loopEnv) runner { return newAddrMover(e.n, e.inc) }},
		// Managers: leader loops (each checks leadership whenever it wakes).
		{"key-rotation", managersOnly, true, func(e loopEnv) runner { return newKeyRotator(e.n, e.rn) }},
		{"ca-finish", managersOnly, true, func(e loopEnv) runner { return newCAFinisher(e.n, e.rn) }},
		{"finish-removals", managersOnly, true, func(e loopEnv) runner { return newRaftMemberFinisher(e.n, e.rn) }},
		{"slow-disk-handover", managersOnly, true, func(e loopEnv) runner { return newSlowDiskWatch(e.n, e.rn) }},
		// Managers: every one.
		{"key-feed", managersOnly, false, buildKeyFeed},
		{"ca-feed", managersOnly, false, buildCAFeed},
		{"unlock-key", managersOnly, false, func(e loopEnv) runner { return newKEKConverger(e.n, e.inc, e.rn) }},
		{"dek-rotation", managersOnly, false, buildDEKRotator},
		{"secret-delivery", managersOnly, false, buildManagerDelivery},
		{"levels", managersOnly, false, func(e loopEnv) runner { return newLevelProber(e.n, e.inc, e.rn) }},
		{"clock-skew", managersOnly, false, func(e loopEnv) runner { return newSkewProber(e.n, e.inc, e.rn) }},
		{"own-role", managersOnly, false, buildOwnRoleWatcher},
		{"ask-own-role", managersOnly, false, func(e loopEnv) runner { return newRoleAsker(e.n, e.inc, e.rn) }},
		{"access", managersOnly, false, func(e loopEnv) runner {
			return runFunc(func(ctx context.Context) { e.n.access.watch(ctx, e.inc, e.rn, e.n.logger) })
		}},
		{"raft-observer", managersOnly, false, func(e loopEnv) runner {
			return &raftObserver{rn: e.rn, self: e.inc.info.NodeID, applyTimeout: e.n.cfg.ApplyTimeout, log: e.n.logger}
		}},
		{"catch-up", managersOnly, false, func(e loopEnv) runner { return newCatchUpTracker(e.n, e.rn) }},
		{"own-address", managersOnly, false, func(e loopEnv) runner {
			return runFunc(func(ctx context.Context) { e.n.fillOwnAddr(ctx, e.inc, e.rn) })
		}},
		// Workers.
		{"follow-cluster", workersOnly, false, func(e loopEnv) runner { return newFollower(e.n, e.inc) }},
	}
}

func buildKeyFeed(e loopEnv) runner {
	return &keyFeed{state: e.rn.fsm, self: e.inc.info.NodeID, keys: e.inc.keys}
}

func buildCAFeed(e loopEnv) runner {
	return &caFeed{state: e.rn.fsm, self: e.inc.info.NodeID, views: e.inc.caViews,
		remember: func() { rememberManagerPeers(e.inc, e.n.dir.saveNodeInfo, e.n.logger) }}
}

func buildDEKRotator(e loopEnv) runner {
	if d := newDEKRotator(e.n, e.inc.info.NodeID, e.rn); d != nil {
		return d
	}
	return nil // a plain log has no DEK
}

func buildManagerDelivery(e loopEnv) runner {
	return &managerDelivery{out: secretWriter{dir: e.n.cfg.secretsDir(), log: e.n.logger}, state: e.rn.fsm, self: e.inc.info.NodeID}
}

func buildOwnRoleWatcher(e loopEnv) runner {
	return &ownRoleWatcher{state: e.rn.fsm, self: e.inc.info.NodeID, ask: func(t ca.RoleTarget) { askRole(e.inc, e.n.roleChange, t) }}
}

// newKeyRotator builds the data-plane key rotator of manager rn (also for
// a node removal's purge).
func newKeyRotator(n *Node, rn *raftNode) *keyRotator {
	return &keyRotator{
		state:   rn.fsm,
		leading: func() bool { return rn.isLeader() && rn.readyTerm.Load() == rn.r.CurrentTerm() },
		propose: func(ctx context.Context, b []byte) error { return n.writes.applyLocal(ctx, rn, b) },
		now: func() time.Time {
			if f, ok := n.keyClock.Load().(func() time.Time); ok { // tests move it
				return f()
			}
			return n.cfg.now()
		},
		clockOK: n.skew.checkIssue,
		kick:    n.keyKick,
		log:     n.logger,
	}
}

// startLoops starts the incarnation's loops for its role, from loopTable.
// n.mu must be held.
func (n *Node) startLoops(ctx context.Context, inc *incarnation) {
	ctx, cancel := context.WithCancel(ctx)
	inc.cancel = cancel
	e := loopEnv{n: n, inc: inc, rn: inc.rn()}
	for _, spec := range loopTable() {
		switch {
		case spec.where == wholeRun, spec.where == managersOnly && e.rn == nil, spec.where == workersOnly && e.rn != nil:
			continue
		}
		r := spec.build(e)
		if r == nil {
			continue
		}
		inc.loops.Go(func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				n.logger.Warn("a background loop stopped", "loop", spec.name, "err", err)
			}
		})
	}
}

// runRunLoops runs the loops that live as long as Run (the role
// supervisor, the retrier of a manager whose certificate expired) until
// ctx ends, and waits for them.
func (n *Node) runRunLoops(ctx context.Context) {
	var wg sync.WaitGroup
	for _, spec := range loopTable() {
		if spec.where != wholeRun {
			continue
		}
		r := spec.build(loopEnv{n: n})
		wg.Go(func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				n.logger.Warn("a background loop stopped", "loop", spec.name, "err", err)
			}
		})
	}
	wg.Wait()
}

// stopLoops ends the loops and waits for them. n.mu must be held.
func (inc *incarnation) stopLoops() {
	inc.cancel()
	inc.loops.Wait()
}
