package fsm

import (
	"fmt"

	"github.com/holdfast/holdfast/ca"
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
		return s.checkNodeAdd(c)
	case *NodeSetRole:
		_, err := s.checkSetRole(c)
		return err
	case *NodeRemove:
		_, err := s.checkNodeRemove(c)
		return err
	case *NodeUpdate:
		if _, ok := s.Nodes[c.ID]; !ok {
			return errorf(ErrNodeNotFound, "node %s not found", c.ID)
		}
	case *NodeAddr:
		_, err := s.checkNodeAddr(c)
		return err
	case *TokenRotate:
		if c.Role != ca.RoleManager && c.Role != ca.RoleWorker {
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

// The checks Apply and Check share.

func (s *State) checkNodeAdd(c *NodeAdd) error {
	n := c.Node
	if n.ID == "" {
		return fmt.Errorf("%w: node without ID", ErrMalformedCommand)
	}
	if n.Role != ca.RoleManager && n.Role != ca.RoleWorker {
		return ErrBadRole
	}
	if _, ok := s.Nodes[n.ID]; ok {
		return errorf(ErrNodeExists, "node %s already exists", n.ID)
	}
	if _, ok := s.Removed[n.ID]; ok {
		return errorf(ErrNodeRemoved, "node %s was removed", n.ID)
	}
	return nil
}

func (s *State) checkSetRole(c *NodeSetRole) (*Node, error) {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return nil, errorf(ErrNodeNotFound, "node %s not found", c.ID)
	}
	if c.Role != ca.RoleManager && c.Role != ca.RoleWorker {
		return nil, ErrBadRole
	}
	if n.Role == ca.RoleManager && c.Role == ca.RoleWorker && s.Managers() == 1 {
		return nil, ErrLastManager
	}
	return n, nil
}

func (s *State) checkNodeRemove(c *NodeRemove) (*Node, error) {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return nil, errorf(ErrNodeNotFound, "node %s not found", c.ID)
	}
	if n.Role == ca.RoleManager {
		if s.Managers() == 1 {
			return nil, ErrLastManager
		}
		if !c.Force {
			return nil, fmt.Errorf("node %s is a manager: demote it first, or force its removal", c.ID)
		}
	}
	return n, nil
}
