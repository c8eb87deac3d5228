package ca

// RoleTarget is the role the cluster gives a node, as the node learns it:
// from its own replicated state (a manager), from a manager's record of it
// (a worker, or a manager that lost its leader), or from a renewal's
// answer.
type RoleTarget struct {
	// Role is RoleManager or RoleWorker; empty when nothing is asked.
	Role Role
	// Removed: the cluster removed the node ('node rm').
	Removed bool
}

// OwnRecordTarget is what a manager's own state asks of it, from the
// state's record of the manager (recorded: its role there, empty if
// there is none) and whether the state lists it as removed. A manager
// notices its demotion and its removal this way; a record that says
// manager asks nothing (a promotion reaches a worker through a manager).
func OwnRecordTarget(recorded Role, removed bool) RoleTarget {
	switch {
	case removed:
		return RoleTarget{Removed: true}
	case recorded == RoleWorker:
		return RoleTarget{Role: RoleWorker}
	}
	return RoleTarget{}
}

// RoleStep is what a node does to take the role its target says.
type RoleStep int

const (
	// RoleKeep: nothing to do.
	RoleKeep RoleStep = iota
	// RoleWipe: the cluster removed the node; every protocol refuses its
	// certificate, so its cluster state is of no use, and sensitive: stop
	// and wipe it.
	RoleWipe
	// RoleRejoin: a manager that raft's configuration does not hold (a
	// promotion or join whose raft step failed): add it as a voter again.
	RoleRejoin
	// RoleSwitch: renew for the target role, then start raft (promotion)
	// or stop it and remove its log (demotion).
	RoleSwitch
)

func (s RoleStep) String() string {
	switch s {
	case RoleKeep:
		return "keep"
	case RoleWipe:
		return "wipe"
	case RoleRejoin:
		return "rejoin"
	case RoleSwitch:
		return "switch"
	}
	return "unknown"
}

// NextRoleStep decides what a node running as have does about target.
// missingFromRaft is true for a manager that runs raft but is not in
// raft's configuration.
func NextRoleStep(target RoleTarget, have Role, missingFromRaft bool) RoleStep {
	switch {
	case target.Removed:
		return RoleWipe
	case target.Role == RoleManager && have == RoleManager:
		if missingFromRaft {
			return RoleRejoin
		}
		return RoleKeep
	case target.Role == "" || target.Role == have:
		return RoleKeep
	}
	return RoleSwitch
}
