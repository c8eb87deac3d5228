package manager

import (
	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/datadir"
)

// stateFacts is what a node's state (status) and health are decided from:
// its own view, read at once.
type stateFacts struct {
	removed      bool // the cluster removed it (removalRecord)
	locked       bool // autolock: waiting for its unlock key
	running      bool // an incarnation runs: initialized or joined
	manager      bool // it runs raft
	needsUpgrade bool // stopped at an entry its build cannot apply
	leaderKnown  bool // raft knows a leader
	catchingUp   bool // catchingUp: not yet applied the leader's commit index since its start
}

// decideState is the state `holdfast status` shows (api.State*).
func decideState(f stateFacts) string {
	switch {
	case f.removed:
		return api.StateRemoved
	case f.locked:
		return api.StateLocked
	case !f.running:
		return api.StateUninitialized
	case !f.manager:
		return api.StateReady
	case f.needsUpgrade:
		return api.StateNeedsUpgrade
	case f.catchingUp:
		return api.StateCatchingUp
	}
	return api.StateReady
}

// decideHealth is the state GET /v1/health answers (api.Health*). It is
// decideState's, except that a manager that knows no leader says so
// (no-leader) rather than catching-up or ready: that is what an operator
// must fix first.
func decideHealth(f stateFacts) string {
	switch {
	case f.removed:
		return api.HealthRemoved
	case f.locked:
		return api.HealthLocked
	case !f.running:
		return api.HealthUninitialized
	case !f.manager:
		return api.HealthReady
	case f.needsUpgrade:
		return api.HealthNeedsUpgrade
	case !f.leaderKnown:
		return api.HealthNoLeader
	case f.catchingUp:
		return api.HealthCatchingUp
	}
	return api.HealthReady
}

// removedStatus is `holdfast status` on a node the cluster removed.
func removedStatus(r *datadir.Removed) *api.Status {
	return &api.Status{NodeID: r.NodeID, ClusterID: r.ClusterID, Role: r.Role, State: api.StateRemoved, Managers: []api.ManagerStatus{}}
}

// removedOf calls removed, which may be nil (adapters built without a
// removal record, in tests).
func removedOf(removed func() *datadir.Removed) *datadir.Removed {
	if removed == nil {
		return nil
	}
	return removed()
}
