package fsm

import (
	"errors"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// Who may do what is decided by the replicated state now, never by a
// certificate alone: a certificate only says who its holder claims to be
// and the role it had when it was issued.

// ErrUnknownNode is a certificate for a node ID the state has no record
// of: a node that never joined, or that the state has forgotten.
var ErrUnknownNode = errors.New("node is not a member of the cluster")

// ErrNotManager is a peer whose role in the state is not manager, on a
// protocol only managers speak.
var ErrNotManager = errors.New("node is not a manager of the cluster")

// PeerRole returns the role the state gives the holder of a certificate
// for node id with role certRole (ca.RoleManager or ca.RoleWorker) at time now:
// the lower of the certificate's role and the node's role in the state,
// so a demoted manager's certificate counts as a worker's and a worker's
// certificate never counts as a manager's. A removed node's certificate
// fails with ErrNodeRemoved, an unknown node's with ErrUnknownNode. A
// state with no cluster yet (a manager that has just joined and not yet
// applied anything) knows no one: it returns certRole.
func (s *State) PeerRole(id string, certRole ca.Role, now time.Time) (ca.Role, error) {
	if s.Cluster == nil {
		return certRole, nil
	}
	if s.IsRemoved(id, now) {
		return "", errorf(ErrNodeRemoved, "node %s was removed from the cluster", id)
	}
	rec, ok := s.Nodes[id]
	if !ok {
		return "", errorf(ErrUnknownNode, "node %s is not a member of this cluster", id)
	}
	if rec.Role == ca.RoleManager && certRole == ca.RoleManager {
		return ca.RoleManager, nil
	}
	return ca.RoleWorker, nil
}

// RaftPeer reports whether the holder of a manager certificate for node id
// may speak raft to this manager now: the node is a manager in the state
// (not removed). A node the state does not know yet is allowed when
// inConfig (it is a server in raft's latest configuration: the
// configuration entry that added it is in this manager's log, which the
// node's record precedes, so this manager has only not applied it yet) or
// when its certificate was issued after the newest entry this manager has
// applied, less margin (this manager is behind the cluster, and refusing
// the new leader would keep it behind for ever). appliedAt is
// FSM.AppendedAt.
//
// A manager the state knows is allowed whether or not raft's
// configuration names it yet. The leader always changes the state first
// (a node's record, its role, its removal) and raft's configuration
// second, so a manager in the state and not in the configuration is one
// being added or promoted, seen by a manager whose log stops between the
// two entries: refusing it would refuse the very leader that must send
// this manager the configuration entry, and it would never catch up.
func (s *State) RaftPeer(id string, certRole ca.Role, issued time.Time, inConfig bool, appliedAt time.Time, margin time.Duration, now time.Time) error {
	role, err := s.PeerRole(id, certRole, now)
	switch {
	case errors.Is(err, ErrUnknownNode):
		if inConfig || issued.After(appliedAt.Add(-margin)) {
			return nil
		}
		return err
	case err != nil:
		return err
	case role != ca.RoleManager:
		return errorf(ErrNotManager, "node %s is not a manager of the cluster now", id)
	}
	return nil
}

// accessChanging reports whether applying c can change what some peer may
// do: membership, roles, the deny list, the CA's roots.
func accessChanging(c Command) bool {
	switch c.Type() {
	case TypeClusterInit, TypeNodeAdd, TypeNodeSetRole, TypeNodeRemove, TypeCARotateStart, TypeCARotateFinish:
		return true
	}
	return false
}

func (f *FSM) noteAccess(c Command) {
	if accessChanging(c) {
		f.access.Add(1)
	}
}

// AccessGeneration returns a number that changes whenever an applied
// command (or a restored snapshot) may have changed who may do what:
// watchers re-check open connections when it moves. It takes no lock, so
// a per-message check can read it while an entry is being applied.
func (f *FSM) AccessGeneration() uint64 { return f.access.Load() }

// AppendedAt returns the newest leader time at which an entry this FSM
// has applied was appended (raft.Log.AppendedAt); zero if none says.
func (f *FSM) AppendedAt() time.Time {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.appendedAt
}
