package manager

import (
	"context"
	"time"
)

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

// loopTable is every background loop of an incarnation. startLoops runs
// the rows for the node's role; a role change stops them all and starts
// them again.
var loopTable = []loopSpec{
	{name: "key-rotation", where: managersOnly, leaderOnly: true, build: newKeyRotatorLoop},
	{name: "key-feed", where: managersOnly, build: func(e loopEnv) runner {
		return &keyFeed{state: e.rn.fsm, self: e.inc.info.NodeID, keys: e.inc.keys}
	}},
	{name: "access", where: managersOnly, build: func(e loopEnv) runner {
		return runFunc(func(ctx context.Context) { e.n.watchAccess(ctx, e.inc, e.rn) })
	}},
	{name: "raft-observer", where: managersOnly, build: func(e loopEnv) runner {
		return runFunc(func(ctx context.Context) { e.n.watchRaft(ctx, e.rn, e.inc.info.NodeID) })
	}},
	{name: "own-address", where: managersOnly, build: func(e loopEnv) runner {
		return runFunc(func(ctx context.Context) { e.n.fillOwnAddr(ctx, e.inc, e.rn) })
	}},
	{name: "renewal", where: everyNode, build: func(e loopEnv) runner {
		return newRenewer(e.n, e.inc)
	}},
	{name: "gossip", where: everyNode, build: func(e loopEnv) runner {
		return newGossiper(e.n, e.inc)
	}},
	{name: "unlock-key", where: managersOnly, build: func(e loopEnv) runner {
		return newKEKConverger(e.n, e.inc, e.rn)
	}},
	{name: "secret-delivery", where: managersOnly, build: func(e loopEnv) runner {
		return &managerDelivery{out: secretWriter{dir: e.n.cfg.secretsDir(), log: e.n.logger}, state: e.rn.fsm, self: e.inc.info.NodeID}
	}},
	{name: "dek-rotation", where: managersOnly, build: func(e loopEnv) runner {
		if d := newDEKRotator(e.n, e.inc.info.NodeID, e.rn); d != nil {
			return d
		}
		return nil // a plain log has no DEK
	}},
	{name: "own-role", where: managersOnly, build: func(e loopEnv) runner {
		return &ownRoleWatcher{state: e.rn.fsm, self: e.inc.info.NodeID, ask: func(role string) { askRole(e.inc, e.n.roleChange, role) }}
	}},
	{name: "ask-own-role", where: managersOnly, build: func(e loopEnv) runner {
		return newRoleAsker(e.n, e.inc, e.rn)
	}},
	{name: "levels", where: managersOnly, build: func(e loopEnv) runner {
		return newLevelProber(e.n, e.inc, e.rn)
	}},
	{name: "follow-cluster", where: workersOnly, build: func(e loopEnv) runner {
		return newFollower(e.n, e.inc)
	}},
	{name: "ca-sync", where: everyNode, build: func(e loopEnv) runner {
		return newCASyncer(e.n, e.inc)
	}},
	{name: "ca-feed", where: managersOnly, build: func(e loopEnv) runner {
		return &caFeed{state: e.rn.fsm, self: e.inc.info.NodeID, views: e.inc.caViews, remember: func() { rememberManagerPeers(e.inc, e.n.saveNodeInfo, e.n.logger) }}
	}},
	{name: "ca-finish", where: managersOnly, leaderOnly: true, build: func(e loopEnv) runner {
		return newCAFinisher(e.n, e.rn)
	}},
}

// newKeyRotator builds the data-plane key rotator of manager rn (also for
// a node removal's purge).
func newKeyRotator(n *Node, rn *raftNode) *keyRotator {
	return &keyRotator{
		state:   rn.fsm,
		leading: func() bool { return rn.isLeader() && rn.readyTerm.Load() == rn.r.CurrentTerm() },
		propose: func(ctx context.Context, b []byte) error { return n.applyLocal(ctx, rn, b) },
		now: func() time.Time {
			if f, ok := n.keyClock.Load().(func() time.Time); ok { // tests move it
				return f()
			}
			return time.Now()
		},
		kick: n.keyKick,
		log:  n.logger,
	}
}

func newKeyRotatorLoop(e loopEnv) runner { return newKeyRotator(e.n, e.rn) }

// startLoops starts the incarnation's loops for its role, from loopTable.
// n.mu must be held.
func (n *Node) startLoops(ctx context.Context, inc *incarnation) {
	ctx, cancel := context.WithCancel(ctx)
	inc.cancel = cancel
	e := loopEnv{n: n, inc: inc, rn: inc.rn()}
	for _, spec := range loopTable {
		switch {
		case spec.where == managersOnly && e.rn == nil, spec.where == workersOnly && e.rn != nil:
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

// stopLoops ends the loops and waits for them. n.mu must be held.
func (inc *incarnation) stopLoops() {
	inc.cancel()
	inc.loops.Wait()
}
