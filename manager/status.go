package manager

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// Status answers `holdfast status`. It never needs quorum: it is this
// node's own view.
func (a *clusterAPI) Status(ctx context.Context) (*api.Status, error) {
	if r := removedOf(a.removed); r != nil {
		return removedStatus(r), nil
	}
	if l := a.locked(); l != nil {
		return &api.Status{NodeID: l.info.NodeID, ClusterID: l.info.ClusterID, Role: l.info.Role, State: api.StateLocked,
			Addr: l.info.AdvertiseAddr, Autolock: true, Managers: []api.ManagerStatus{}}, nil
	}
	inc := a.current()
	if inc == nil {
		return &api.Status{State: api.StateUninitialized, Managers: []api.ManagerStatus{}}, nil
	}
	var st *api.Status
	if inc.rn() == nil {
		st = a.workerStatus(ctx, inc)
	} else {
		st = a.managerStatus(ctx, inc, inc.rn(), true)
	}
	st.Gossip = inc.gossipStatus()
	return st, nil
}

func (a *clusterAPI) managerStatus(ctx context.Context, inc *incarnation, rn *raftNode, askLeader bool) *api.Status {
	st := &api.Status{
		NodeID:    inc.info.NodeID,
		ClusterID: inc.info.ClusterID,
		Role:      roleManager,
		State:     api.StateReady,
		Addr:      inc.info.AdvertiseAddr,
		IsLeader:  rn.isLeader(),
		Raft: api.RaftStatus{
			Term:         rn.r.CurrentTerm(),
			LastIndex:    rn.r.LastIndex(),
			CommitIndex:  rn.r.CommitIndex(),
			AppliedIndex: rn.fsm.Index(),
		},
		Managers: []api.ManagerStatus{},
	}
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster != nil {
			st.Autolock = s.Cluster.Settings.Autolock
		}
	})
	own := rn.ownLevel()
	st.Level, st.Commands, st.NeedsUpgrade = own.Level, own.Commands, own.Stopped
	st.ClusterVersion = rn.clusterVersion()
	catching, target := rn.catchUp.progress(st.Raft.AppliedIndex)
	st.State = decideState(stateFacts{running: true, manager: true, needsUpgrade: st.NeedsUpgrade != nil, catchingUp: catching})
	if st.State == api.StateCatchingUp {
		st.CatchingUp = &api.CatchingUp{AppliedIndex: st.Raft.AppliedIndex, TargetIndex: target}
	}
	st.Leader.NodeID, st.Leader.Addr = rn.leaderInfo()
	st.ClockSkew = a.skew.status()
	reach := a.reachability(ctx, inc, rn, askLeader)
	for _, s := range rn.servers() {
		st.Managers = append(st.Managers, api.ManagerStatus{
			NodeID:    string(s.ID),
			Addr:      string(s.Address),
			Leader:    string(s.ID) == st.Leader.NodeID,
			Voter:     s.Suffrage == raft.Voter,
			Reachable: reach[string(s.ID)],
		})
	}
	return st
}

// servers returns the raft configuration's members.
func (rn *raftNode) servers() []raft.Server {
	f := rn.r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	return f.Configuration().Servers
}

// reachability tells which managers answer. Gossip says, for every node
// this node's memberlist has seen; for the others, raft: the leader knows
// from its heartbeats; a follower knows the leader from its last contact
// and asks the leader about the rest.
func (a *clusterAPI) reachability(ctx context.Context, inc *incarnation, rn *raftNode, askLeader bool) map[string]bool {
	out := a.raftReachability(ctx, inc, rn, askLeader)
	for _, s := range rn.servers() {
		if alive, ok := inc.gossipReach(string(s.ID)); ok {
			out[string(s.ID)] = alive
		}
	}
	return out
}

func (a *clusterAPI) raftReachability(ctx context.Context, inc *incarnation, rn *raftNode, askLeader bool) map[string]bool {
	out := map[string]bool{inc.info.NodeID: true}
	if rn.isLeader() {
		rn.reachMu.Lock()
		defer rn.reachMu.Unlock()
		for _, s := range rn.servers() {
			if s.ID != raft.ServerID(inc.info.NodeID) {
				out[string(s.ID)] = !rn.unreachable[s.ID]
			}
		}
		return out
	}
	leaderID, leaderAddr := rn.leaderInfo()
	if leaderID == "" {
		return out
	}
	out[leaderID] = time.Since(rn.r.LastContact()) < 3*a.heartbeatTimeout
	if !askLeader || !out[leaderID] {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := peerClient(inc, leaderAddr).Reachability(ctx)
	if err != nil {
		return out
	}
	for id, ok := range r.Reachable {
		if id != inc.info.NodeID {
			out[id] = ok
		}
	}
	out[leaderID] = true
	return out
}

// workerStatus asks a manager for the cluster's view and puts this node's
// own fields on it.
func (a *clusterAPI) workerStatus(ctx context.Context, inc *incarnation) *api.Status {
	st := &api.Status{Managers: []api.ManagerStatus{}}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, m := range inc.managers() {
		if s, err := peerClient(inc, m.Addr).ClusterStatus(ctx); err == nil {
			st = s
			break
		}
	}
	st.NodeID = inc.info.NodeID
	st.ClusterID = inc.info.ClusterID
	st.Role = roleWorker
	st.State = api.StateReady
	st.Addr = inc.info.AdvertiseAddr
	st.IsLeader = false
	st.Raft = api.RaftStatus{}
	st.CatchingUp = nil // the manager's, not this worker's
	// The manager's cluster version stands; the level is this build's,
	// and a worker applies no log, so it never needs an upgrade to.
	level := a.level
	st.Level, st.Commands, st.NeedsUpgrade = level, commandNames(fsm.Commands(level)), nil
	return st
}

// managers returns the managers this node knows of.
func (inc *incarnation) managers() []api.PeerAddr {
	if inc.rn() != nil {
		var out []api.PeerAddr
		for _, s := range inc.rn().servers() {
			out = append(out, api.PeerAddr{NodeID: string(s.ID), Addr: string(s.Address)})
		}
		return out
	}
	inc.infoMu.Lock()
	defer inc.infoMu.Unlock()
	return append([]api.PeerAddr(nil), inc.info.Managers...)
}
