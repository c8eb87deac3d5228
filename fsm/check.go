package fsm

import (
	"fmt"
)

// Check tells, without changing the state, whether applying c now would
// fail, and with the error Apply would return. The leader runs it before a
// command enters the log (a write that would fail then costs nothing on
// the other managers, and never writes a refused secret's sealed data into
// every log); Apply runs its own checks again, since the state may change
// in between. Commands Check knows nothing particular about pass.
func (s *State) Check(c Command) error {
	if s.Cluster == nil {
		if _, ok := c.(*ClusterInit); ok {
			return nil
		}
		return ErrNotInitialized
	}
	switch c := c.(type) {
	case *ClusterInit:
		return ErrAlreadyInitialized
	case *NodeAdd:
		if _, ok := s.Nodes[c.Node.ID]; ok {
			return errorf(ErrNodeExists, "node %s already exists", c.Node.ID)
		}
		if _, ok := s.Removed[c.Node.ID]; ok {
			return errorf(ErrNodeRemoved, "node %s was removed", c.Node.ID)
		}
	case *NodeSetRole:
		n, ok := s.Nodes[c.ID]
		if !ok {
			return errorf(ErrNodeNotFound, "node %s not found", c.ID)
		}
		if c.Role != RoleManager && c.Role != RoleWorker {
			return ErrBadRole
		}
		if n.Role == RoleManager && c.Role == RoleWorker && s.Managers() == 1 {
			return ErrLastManager
		}
	case *NodeRemove:
		n, ok := s.Nodes[c.ID]
		if !ok {
			return errorf(ErrNodeNotFound, "node %s not found", c.ID)
		}
		if n.Role == RoleManager && s.Managers() == 1 {
			return ErrLastManager
		}
		if n.Role == RoleManager && !c.Force {
			return fmt.Errorf("node %s is a manager: demote it first, or force its removal", c.ID)
		}
	case *NodeUpdate:
		if _, ok := s.Nodes[c.ID]; !ok {
			return errorf(ErrNodeNotFound, "node %s not found", c.ID)
		}
	case *TokenRotate:
		if c.Role != RoleManager && c.Role != RoleWorker {
			return ErrBadRole
		}
	case *SettingsUpdate:
		return c.Settings.Validate()
	case *KeysRotate:
		if ring := s.Keys.Ring(c.Rotation.Subsystem); ring.Lamport() != c.Rotation.After {
			return s.Keys.Clone().Apply(c.Rotation)
		}
	case *SecretCreate:
		return s.Secrets.CheckCreate(c.CreateCmd, s.nodeExists)
	case *SecretRemove:
		return s.Secrets.CheckRemove(c.RemoveCmd)
	case *SecretLabels:
		return s.Secrets.CheckSetLabels(c.SetLabelsCmd)
	case *SecretGrant:
		return s.Secrets.CheckGrant(c.GrantCmd, s.nodeExists)
	case *SecretRevoke:
		return s.Secrets.CheckRevoke(c.RevokeCmd)
	}
	return nil
}
