package manager

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/fsm"
)

// A removal finishes in raft's configuration.
//
// Removing a manager commits node.rm to the state first and then removes
// the server from raft's configuration. When the second step fails (the
// leader lost leadership between the two: the chaos soak saw it when the
// leader's clock jumped back and its connections closed), the state says
// removed and raft still counts the node as a voter: unreachable for
// ever, a vote the cluster's majority needs and never gets, and `node rm`
// answers "not found", since the record is gone. The leader therefore
// removes from raft's configuration every server the state says was
// removed, whenever the state changes and every raftMemberEvery.

const raftMemberEvery = 5 * time.Second

// staleServers returns the members of raft's configuration that the
// state removed: in its deny list and without a node record. self is
// never one (a leader does not remove itself; it hands over first).
func staleServers(s *fsm.State, servers []raft.Server, self string) []raft.Server {
	var out []raft.Server
	for _, srv := range servers {
		id := string(srv.ID)
		if id == self {
			continue
		}
		if _, removed := s.Removed[id]; !removed {
			continue
		}
		if _, known := s.Nodes[id]; known {
			continue
		}
		out = append(out, srv)
	}
	return out
}

// raftMemberFinisher runs on every manager and acts while it leads.
type raftMemberFinisher struct {
	self    string
	state   stateView
	leading func() bool
	servers func() []raft.Server
	remove  func(id raft.ServerID) error
	every   time.Duration
	log     *slog.Logger
}

func (f *raftMemberFinisher) Run(ctx context.Context) error {
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		changed := f.state.Changed()
		if f.leading() {
			f.finish()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-t.C:
		}
	}
}

// finish removes from raft every server the state removed.
func (f *raftMemberFinisher) finish() {
	var stale []raft.Server
	f.state.Read(func(s *fsm.State, _ uint64) { stale = staleServers(s, f.servers(), f.self) })
	for _, srv := range stale {
		f.log.Warn("finishing the removal of a node from raft's configuration: the cluster removed it, raft still counted it", "node_id", string(srv.ID), "addr", string(srv.Address), "suffrage", srv.Suffrage.String())
		if err := f.remove(srv.ID); err != nil {
			f.log.Warn("removing a removed node from raft's configuration failed; trying again", "node_id", string(srv.ID), "err", err)
			return
		}
	}
}

// newRaftMemberFinisher builds manager rn's removal finisher.
func newRaftMemberFinisher(n *Node, rn *raftNode) *raftMemberFinisher {
	return &raftMemberFinisher{
		self:    rn.nodeID,
		state:   rn.fsm,
		leading: rn.isLeader,
		servers: rn.servers,
		remove: func(id raft.ServerID) error {
			return rn.r.RemoveServer(id, 0, n.cfg.ApplyTimeout).Error()
		},
		every: raftMemberEvery,
		log:   n.logger,
	}
}
