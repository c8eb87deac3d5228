package manager

import (
	"context"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
)

// ownRoleWatcher notices, on a manager, that the cluster has demoted or
// removed it (ca.OwnRecordTarget reads its record), and asks the role
// supervisor to act.
type ownRoleWatcher struct {
	state stateView
	self  string
	ask   func(t ca.RoleTarget) // askRole
}

func (w *ownRoleWatcher) Run(ctx context.Context) error {
	for {
		ch := w.state.Changed()
		var role ca.Role
		var removed bool
		w.state.Read(func(s *fsm.State, _ uint64) {
			if p, ok := s.Nodes[w.self]; ok {
				role = p.Role
			}
			_, removed = s.Removed[w.self]
		})
		t := ca.OwnRecordTarget(role, removed)
		if t.Removed {
			w.ask(t)
			return nil
		}
		if t.Role != "" {
			w.ask(t)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// leaderlessRoleCheck is how long a manager goes without a leader before
// it asks the other managers whether it is still one.
const leaderlessRoleCheck = 3 * time.Second

// roleAsker covers what ownRoleWatcher cannot see. A demotion commits the
// role change and then removes the manager from raft; a manager that was
// down or behind gets neither entry, and no leader contacts it again, so
// its own state never says it was demoted: it campaigns for ever and its
// peers refuse it. When it has had no leader for leaderlessRoleCheck, it
// asks the other managers for its record (the node API's self route, which
// its old manager certificate may still call, as the worker it now is),
// and takes a worker role from there. The record is committed state, so
// it never demotes a manager that was not demoted; a later promotion is
// settled by the role supervisor, which takes the role the renewal
// answers with.
type roleAsker struct {
	self string
	// leaderKnown reports whether this manager knows a leader (or is one).
	leaderKnown func() bool
	managers    func() []api.PeerAddr
	// record asks the manager at addr for this node's record.
	record func(ctx context.Context, addr string) (*api.SelfView, error)
	ask    func(t ca.RoleTarget) // askRole
	log    *slog.Logger
}

func (a *roleAsker) Run(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var leaderless time.Time // since when no leader is known; zero while one is
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if a.leaderKnown() {
			leaderless = time.Time{}
			continue
		}
		if leaderless.IsZero() {
			leaderless = time.Now()
		}
		if time.Since(leaderless) < leaderlessRoleCheck {
			continue
		}
		for _, m := range a.managers() {
			if m.NodeID == a.self {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			view, err := a.record(cctx, m.Addr)
			cancel()
			if api.IsRemoved(err) {
				a.log.Warn("the cluster removed this manager while it could not hear of it", "told_by", m.NodeID)
				a.ask(ca.RoleTarget{Removed: true})
				return nil
			}
			if err != nil || view.Node == nil {
				continue
			}
			if view.Node.Role == roleWorker {
				a.log.Info("the cluster demoted this manager while it could not hear of it; becoming a worker", "told_by", m.NodeID)
				a.ask(ca.RoleTarget{Role: roleWorker})
				return nil
			}
			break // a manager says this node still is one
		}
	}
}

// newRoleAsker builds manager rn's role asker.
func newRoleAsker(n *Node, inc *incarnation, rn *raftNode) *roleAsker {
	return &roleAsker{
		self: inc.info.NodeID,
		leaderKnown: func() bool {
			_, addr := rn.leaderInfo()
			return addr != "" || rn.isLeader()
		},
		managers: inc.managers,
		record: func(ctx context.Context, addr string) (*api.SelfView, error) {
			return peerClient(inc, addr).Self(ctx, 0)
		},
		ask: func(t ca.RoleTarget) { askRole(inc, n.roleChange, t) },
		log: n.logger,
	}
}
