package manager

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// levelRaft is what the level prober needs of a manager's raft half.
// *raftNode is one.
type levelRaft interface {
	leaderChanged() <-chan struct{}
	isLeader() bool
	servers() []raft.Server
	ownLevel() *api.LevelInfo
	clusterVersion() int
}

var _ levelRaft = (*raftNode)(nil)

// levelProber runs on every manager: it asks every other manager its
// level, so that each knows the cluster version (status, metrics) and a
// new leader starts from fresh answers. While this node leads it also
// records the levels in the node records once the cluster version
// allows; a manager stopped at an entry it cannot apply hands leadership
// over, since it can neither serve reads nor see its own writes applied.
type levelProber struct {
	self   string
	raft   levelRaft
	levels *levelView
	state  stateView
	// needsUpgrade is the entry this manager stopped at, or nil.
	needsUpgrade func() *fsm.UpgradeError
	handOver     func() error
	// ask asks the manager at addr its level.
	ask func(ctx context.Context, addr string) (*api.LevelInfo, error)
	// disks keeps what each answer said of the manager's log syncs.
	disks *peerDisks
	// apply commits a command through this leader's raft.
	apply func(ctx context.Context, cmd fsm.Command) error
	every time.Duration
	log   *slog.Logger
}

func (p *levelProber) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		changed := p.raft.leaderChanged()
		p.probe(ctx)
		p.levels.cv.Store(int64(p.raft.clusterVersion()))
		if p.raft.isLeader() {
			if st := p.needsUpgrade(); st != nil {
				p.log.Error("handing leadership over: this manager needs an upgrade", "err", st)
				_ = p.handOver()
			} else if err := p.record(ctx); err != nil && p.raft.isLeader() {
				p.log.Warn("recording the managers' levels", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-changed:
		}
	}
}

// probe asks every other member of raft's configuration its level. One
// that does not answer keeps what was known of it.
func (p *levelProber) probe(ctx context.Context) {
	var wg sync.WaitGroup
	p.levels.set(p.self, p.raft.ownLevel())
	for _, srv := range p.raft.servers() {
		if string(srv.ID) == p.self {
			continue
		}
		wg.Go(func() {
			if li, err := p.ask(ctx, string(srv.Address)); err == nil {
				p.levels.set(string(srv.ID), li)
				if p.disks != nil {
					p.disks.record(string(srv.ID), li, time.Now())
				}
			}
		})
	}
	wg.Wait()
}

// record commits a node.level for each manager whose record differs from
// what it answered, once every manager can apply node.level.
func (p *levelProber) record(ctx context.Context) error {
	if !fsm.Knows(p.raft.clusterVersion(), fsm.TypeNodeLevel, 1) {
		return nil
	}
	var stale []*fsm.NodeLevel
	servers := p.raft.servers()
	p.state.Read(func(s *fsm.State, _ uint64) {
		for _, srv := range servers {
			id := string(srv.ID)
			li, ok := p.levels.get(id)
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
		if err := p.apply(ctx, c); err != nil {
			return err
		}
		p.log.Info("recorded a manager's level", "node_id", c.ID, "level", c.Level)
	}
	return nil
}

// askLevel asks a manager its level; a build from before levels has no
// such route and counts as the lowest level.
func askLevel(ctx context.Context, c *api.Client) (*api.LevelInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	li, err := c.Level(ctx)
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
		return &api.LevelInfo{Level: fsm.LowestLevel, Commands: commandNames(fsm.Commands(fsm.LowestLevel))}, nil
	}
	return li, err
}

// newLevelProber builds manager rn's level prober.
func newLevelProber(n *Node, inc *incarnation, rn *raftNode) *levelProber {
	return &levelProber{
		self:         rn.nodeID,
		raft:         rn,
		levels:       &rn.levels,
		state:        rn.fsm,
		needsUpgrade: rn.fsm.NeedsUpgrade,
		handOver:     func() error { return rn.r.LeadershipTransfer().Error() },
		ask: func(ctx context.Context, addr string) (*api.LevelInfo, error) {
			return askLevel(ctx, peerClient(inc, addr))
		},
		apply: func(ctx context.Context, cmd fsm.Command) error { return n.writes.applyCmd(ctx, rn, cmd) },
		disks: &rn.peerDisks,
		every: levelProbeInterval,
		log:   n.logger,
	}
}
