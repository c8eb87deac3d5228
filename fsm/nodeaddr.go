package fsm

import (
	"errors"
	"fmt"
	"net"

	"github.com/holdfast/holdfast/ca"
)

// TypeNodeAddr records a node's new address (levels.go: Level5).
const TypeNodeAddr Type = 32

// NodeAddr records the address other nodes now reach node ID at: a node
// restarted with another advertise address asks the leader for it
// (docs/DESIGN-NOTES.md, "A node at a new address"). Unlike node.update,
// whose address every build applies unchecked, it is refused alike on
// every replica when the address is not a reachable HOST:PORT
// (ErrBadAddr) or is another manager's (ErrAddrInUse): two managers at
// one address would make raft's configuration invalid. Below Level5 the
// leader proposes it as node.update version 1 (Downgrade), without these
// checks.
type NodeAddr struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

func (*NodeAddr) Type() Type     { return TypeNodeAddr }
func (*NodeAddr) Version() uint8 { return 1 }

// Errors of node.addr.
var (
	ErrBadAddr   = errors.New("not a reachable HOST:PORT")
	ErrAddrInUse = errors.New("address is another manager's")
)

// CheckAddr reports whether addr can be a node's address: HOST:PORT with a
// host other nodes can reach (not empty, not unspecified) and a port
// other than 0.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %q: %v", ErrBadAddr, addr, err)
	case host == "":
		return fmt.Errorf("%w: %q has no host", ErrBadAddr, addr)
	case net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified():
		return fmt.Errorf("%w: %q is no address other nodes can reach", ErrBadAddr, addr)
	case port == "" || port == "0":
		return fmt.Errorf("%w: %q has no port", ErrBadAddr, addr)
	}
	return nil
}

// checkNodeAddr is node.addr's rule, for Check and Apply alike.
func (s *State) checkNodeAddr(c *NodeAddr) (*Node, error) {
	n, ok := s.Nodes[c.ID]
	if !ok {
		return nil, errorf(ErrNodeNotFound, "node %s not found", c.ID)
	}
	if err := CheckAddr(c.Addr); err != nil {
		return nil, err
	}
	for id, o := range s.Nodes {
		if id != c.ID && o.Role == ca.RoleManager && o.Addr == c.Addr {
			return nil, errorf(ErrAddrInUse, "address %s is manager %s's; give node %s another address, or remove %s first", c.Addr, id, c.ID, id)
		}
	}
	return n, nil
}

func (s *State) applyNodeAddr(c *NodeAddr) error {
	n, err := s.checkNodeAddr(c)
	if err != nil {
		return err
	}
	n.Addr = c.Addr
	return nil
}

// nodeAddrAsUpdate is node.addr as node.update version 1, for a cluster
// below Level5.
func nodeAddrAsUpdate(b []byte) ([]byte, error) {
	c, err := Decode(b)
	if err != nil {
		return nil, err
	}
	a, ok := c.(*NodeAddr)
	if !ok {
		return nil, fmt.Errorf("%w: not a node.addr", ErrMalformedCommand)
	}
	return Encode(&NodeUpdate{ID: a.ID, Addr: a.Addr})
}
