package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// Levels and the cluster version. Every manager's build has a level
// (fsm.CurrentLevel, or a lower one under the daemon's test-only
// HOLDFAST_TEST_LEVEL)
// and says so at GET /internal/v1/level. The cluster version is the lowest
// level among the managers in raft's configuration, voters and servers
// being added alike; the leader proposes only what it allows (propose.go).
// What a manager knows of each other manager's level, freshest first:
//
//  1. what the manager answered this node's last probe (levelsLoop, on
//     every manager), fsm.LowestLevel for a build that has no such route;
//  2. what the joiner said when it was granted its certificate;
//  3. the level recorded in its node record (fsm.NodeLevel), which the
//     leader commits once the cluster version allows node.level;
//  4. otherwise fsm.LowestLevel.
//
// So a new leader, before it has asked anyone, uses the records, and a
// manager nobody has heard of counts as the lowest level: the leader
// never sends a manager an entry it cannot apply.

// levelProbeInterval is how often every manager asks the others their
// level.
const levelProbeInterval = 2 * time.Second

// levelView is what each manager answered this node's last probe.
type levelView struct {
	mu    sync.Mutex
	known map[string]*api.LevelInfo // by node ID
	// cv is the cluster version the proposer uses, 0 until computed: it
	// reads neither raft's configuration nor the FSM's lock on every
	// batch. Recomputed whenever a level is learnt and at every probe, so
	// that it follows the configuration within levelProbeInterval. A
	// manager that joins is checked against the cluster version computed
	// afresh, so the cached value is never above a member's level.
	cv atomic.Int64
}

func (v *levelView) set(id string, li *api.LevelInfo) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.known == nil {
		v.known = map[string]*api.LevelInfo{}
	}
	v.known[id] = li
	v.cv.Store(0) // computed again at the next proposal
}

func (v *levelView) get(id string) (*api.LevelInfo, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	li, ok := v.known[id]
	return li, ok
}

// ownLevel is what this manager's build can apply.
func (rn *raftNode) ownLevel() *api.LevelInfo {
	level := rn.fsm.Level()
	li := &api.LevelInfo{Level: level, Commands: commandNames(fsm.Commands(level))}
	if st := rn.fsm.NeedsUpgrade(); st != nil {
		li.Stopped = needsUpgradeView(st)
	}
	return li
}

func commandNames(cvs []fsm.CommandVersion) []string {
	out := make([]string, len(cvs))
	for i, cv := range cvs {
		out[i] = cv.String()
	}
	return out
}

func needsUpgradeView(e *fsm.UpgradeError) *api.NeedsUpgrade {
	return &api.NeedsUpgrade{Index: e.Index, Command: e.Command.Type.String(), Version: e.Command.Version}
}

// clusterVersion is the lowest level among the members of raft's
// configuration, as this node knows them.
func (rn *raftNode) clusterVersion() int {
	servers := rn.servers()
	recorded := make(map[string]int, len(servers))
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		for _, srv := range servers {
			if node, ok := s.Nodes[string(srv.ID)]; ok {
				recorded[string(srv.ID)] = node.Level
			}
		}
	})
	cv := rn.fsm.Level()
	for _, srv := range servers {
		id := string(srv.ID)
		if id == rn.nodeID {
			continue
		}
		l := recorded[id]
		if li, ok := rn.levels.get(id); ok {
			l = li.Level
		}
		cv = min(cv, max(l, fsm.LowestLevel))
	}
	return cv
}

// proposalVersion is the cluster version the proposer encodes for.
func (rn *raftNode) proposalVersion() int {
	if cv := rn.levels.cv.Load(); cv > 0 {
		return int(cv)
	}
	cv := rn.clusterVersion()
	rn.levels.cv.Store(int64(cv))
	return cv
}

// Level answers GET /internal/v1/level.
func (a *nodeAPI) Level(ctx context.Context, from api.Peer) (*api.LevelInfo, error) {
	_, rn, err := a.writes.managerRaft()
	if err != nil {
		return nil, err
	}
	return rn.ownLevel(), nil
}

// errNeedsUpgrade is what a manager that stopped at an entry answers
// reads with.
func errNeedsUpgrade(e *fsm.UpgradeError) error {
	return api.Wrap(api.CodeNeedsUpgrade, fmt.Errorf("this manager serves no reads: %w", e))
}

// checkJoinLevel refuses a manager whose build is below the cluster
// version, and otherwise remembers its level for when it is added to raft.
func (rn *raftNode) checkJoinLevel(id string, level int) error {
	level = max(level, fsm.LowestLevel)
	if cv := rn.clusterVersion(); level < cv {
		return api.Errorf(api.CodeConflict,
			"the joining manager's build is at level %d, below the cluster version %d: run a build of level %d or later on it (holdfast version shows a build's level)",
			level, cv, cv)
	}
	rn.levels.set(id, &api.LevelInfo{Level: level, Commands: commandNames(fsm.Commands(level))})
	return nil
}

// admitLevel checks, before a manager is added to raft, that its build is
// not below the cluster version; it asks the manager unless it said so
// when it joined.
func (n *Node) admitLevel(ctx context.Context, rn *raftNode, id, addr string) error {
	li, ok := rn.levels.get(id)
	if !ok {
		inc := n.current()
		if inc == nil {
			return api.ErrUninitialized
		}
		var err error
		if li, err = n.askLevel(ctx, inc, addr); err != nil {
			return api.Errorf(api.CodeUnavailable, "ask manager %s its level before adding it to raft: %v", id, err)
		}
	}
	return rn.checkJoinLevel(id, li.Level)
}

// askLevel asks the manager at addr its level; a build from before levels
// has no such route and counts as the lowest level.
func (n *Node) askLevel(ctx context.Context, inc *incarnation, addr string) (*api.LevelInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	li, err := peerClient(inc, addr).Level(ctx)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
		return &api.LevelInfo{Level: fsm.LowestLevel, Commands: commandNames(fsm.Commands(fsm.LowestLevel))}, nil
	}
	return li, err
}

// levelsLoop runs on every manager: it asks every other manager its
// level, so that each knows the cluster version (status, metrics) and a
// new leader starts from fresh answers. While this node leads it also
// records the levels in the node records once the cluster version
// allows; a manager stopped at an entry it cannot apply hands leadership
// over, since it can neither serve reads nor see its own writes applied.
func (n *Node) levelsLoop(ctx context.Context, inc *incarnation, rn *raftNode) {
	t := time.NewTicker(levelProbeInterval)
	defer t.Stop()
	for {
		changed := rn.leaderChanged()
		n.probeLevels(ctx, inc, rn)
		rn.levels.cv.Store(int64(rn.clusterVersion()))
		if rn.isLeader() {
			if st := rn.fsm.NeedsUpgrade(); st != nil {
				n.logger.Error("handing leadership over: this manager needs an upgrade", "err", st)
				_ = rn.r.LeadershipTransfer().Error()
			} else if err := n.recordLevels(ctx, rn); err != nil && rn.isLeader() {
				n.logger.Warn("recording the managers' levels", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
	}
}

// probeLevels asks every other member of raft's configuration its level.
// One that does not answer keeps what was known of it.
func (n *Node) probeLevels(ctx context.Context, inc *incarnation, rn *raftNode) {
	var wg sync.WaitGroup
	rn.levels.set(rn.nodeID, rn.ownLevel())
	for _, srv := range rn.servers() {
		if string(srv.ID) == rn.nodeID {
			continue
		}
		wg.Go(func() {
			if li, err := n.askLevel(ctx, inc, string(srv.Address)); err == nil {
				rn.levels.set(string(srv.ID), li)
			}
		})
	}
	wg.Wait()
}

// recordLevels commits a node.level for each manager whose record differs
// from what it answered, once every manager can apply node.level.
func (n *Node) recordLevels(ctx context.Context, rn *raftNode) error {
	if !fsm.Knows(rn.clusterVersion(), fsm.TypeNodeLevel, 1) {
		return nil
	}
	var stale []*fsm.NodeLevel
	servers := rn.servers()
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		for _, srv := range servers {
			id := string(srv.ID)
			li, ok := rn.levels.get(id)
			node, exists := s.Nodes[id]
			if !ok || !exists || srv.Suffrage == raft.Staging {
				continue
			}
			if node.Level != li.Level || !slices.Equal(node.Commands, li.Commands) {
				stale = append(stale, &fsm.NodeLevel{ID: id, Level: li.Level, Commands: li.Commands})
			}
		}
	})
	for _, c := range stale {
		if err := n.writes.applyCmd(ctx, rn, c); err != nil {
			return err
		}
		n.logger.Info("recorded a manager's level", "node_id", c.ID, "level", c.Level)
	}
	return nil
}
