package manager

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
//  1. what the manager answered this node's last probe (levelProber, on
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
	li := rn.ownLevel()
	li.Time = a.now().UTC()
	if d, n, ok := rn.syncs.reading(time.Now()); ok {
		li.LogSyncSeconds, li.LogSyncSamples = d.Seconds(), n
	}
	return li, nil
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
		if li, err = askLevel(ctx, peerClient(inc, addr)); err != nil {
			return api.Errorf(api.CodeUnavailable, "ask manager %s its level before adding it to raft: %v", id, err)
		}
	}
	return rn.checkJoinLevel(id, li.Level)
}
