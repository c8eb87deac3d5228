package fsm

import (
	"fmt"
	"time"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/overlaykeys"
	"github.com/holdfast/holdfast/secrets"
)

// ClusterInit creates the cluster: its identity, CA, tokens, settings and
// first manager.
type ClusterInit struct {
	Cluster Cluster `json:"cluster"`
	First   Node    `json:"first"`
}

// NodeAdd records a node that has just joined.
type NodeAdd struct {
	Node Node `json:"node"`
}

// NodeSetRole promotes or demotes a node.
type NodeSetRole struct {
	ID   string  `json:"id"`
	Role ca.Role `json:"role"`
}

// NodeRemove removes a node and puts it on the deny list until Until (when
// its certificate would have expired).
type NodeRemove struct {
	ID    string    `json:"id"`
	Until time.Time `json:"until"`
	// Force allows removing a manager; without it only workers go.
	Force bool `json:"force"`
}

// NodeUpdate records a node's new address or certificate expiry. Zero fields
// are left unchanged.
type NodeUpdate struct {
	ID            string    `json:"id"`
	Addr          string    `json:"addr,omitempty"`
	CertExpiresAt time.Time `json:"cert_expires_at,omitzero"`
	GossipAddr    string    `json:"gossip_addr,omitempty"`
	// CertSerial and CertKeySHA256 record the certificate just issued
	// (version 2); set together with CertExpiresAt.
	CertSerial    string `json:"cert_serial,omitempty"`
	CertKeySHA256 string `json:"cert_key_sha256,omitempty"`
}

// TokenRotate replaces one role's join token.
type TokenRotate struct {
	Role  ca.Role `json:"role"`
	Token string  `json:"token"`
}

// SettingsUpdate replaces the cluster settings.
type SettingsUpdate struct {
	Settings Settings `json:"settings"`
}

func (*ClusterInit) Type() Type    { return TypeClusterInit }
func (*NodeAdd) Type() Type        { return TypeNodeAdd }
func (*NodeSetRole) Type() Type    { return TypeNodeSetRole }
func (*NodeRemove) Type() Type     { return TypeNodeRemove }
func (*NodeUpdate) Type() Type     { return TypeNodeUpdate }
func (*TokenRotate) Type() Type    { return TypeTokenRotate }
func (*SettingsUpdate) Type() Type { return TypeSettingsUpdate }

func (c *ClusterInit) Version() uint8  { return certVersion(c.First.CertSerial, c.First.CertKeySHA256) }
func (c *NodeAdd) Version() uint8      { return certVersion(c.Node.CertSerial, c.Node.CertKeySHA256) }
func (*NodeSetRole) Version() uint8    { return 1 }
func (*NodeRemove) Version() uint8     { return 1 }
func (c *NodeUpdate) Version() uint8   { return certVersion(c.CertSerial, c.CertKeySHA256) }
func (*TokenRotate) Version() uint8    { return 1 }
func (*SettingsUpdate) Version() uint8 { return 1 }

// TypeNodeLevel records the level a manager's build advertises (levels.go).
const TypeNodeLevel Type = 31

// NodeLevel records what manager ID can apply: its build's level and the
// command versions it knows. The leader commits it only once the cluster
// version is Level4 or above.
type NodeLevel struct {
	ID       string   `json:"id"`
	Level    int      `json:"level"`
	Commands []string `json:"commands,omitempty"`
}

func (*NodeLevel) Type() Type     { return TypeNodeLevel }
func (*NodeLevel) Version() uint8 { return 1 }

// LeaderReady is the first command a new leader commits in its term. It
// changes nothing; once it is applied, every entry the leader commits in
// this term reaches the FSM, which is what linearizable reads wait on
// (raft's own no-op and barrier entries never reach an FSM).
type LeaderReady struct {
	NodeID string `json:"node_id"`
	Term   uint64 `json:"term"`
}

func (*LeaderReady) Type() Type     { return TypeLeaderReady }
func (*LeaderReady) Version() uint8 { return 1 }

// AutolockSet turns autolock on (with a new unlock key) or off.
type AutolockSet struct {
	Enabled   bool   `json:"enabled"`
	UnlockKey string `json:"unlock_key,omitempty"`
}

func (*AutolockSet) Type() Type     { return TypeAutolockSet }
func (*AutolockSet) Version() uint8 { return 1 }

// KeysRotate rotates one data-plane keyring; package overlaykeys owns its
// rules. Its JSON carries key material (the raft log is sealed).
type KeysRotate struct{ overlaykeys.Rotation }

func (*KeysRotate) Type() Type     { return TypeKeysRotate }
func (*KeysRotate) Version() uint8 { return 1 }

// Secret commands wrap package secrets' payloads; that package owns their
// rules. SecretCreate carries the data (the raft log is sealed); printing
// it never does.
type (
	SecretCreate struct{ secrets.CreateCmd }
	SecretRemove struct{ secrets.RemoveCmd }
	SecretLabels struct{ secrets.SetLabelsCmd }
	SecretGrant  struct{ secrets.GrantCmd }
	SecretRevoke struct{ secrets.RevokeCmd }
)

func (*SecretCreate) Type() Type     { return TypeSecretCreate }
func (*SecretRemove) Type() Type     { return TypeSecretRemove }
func (*SecretLabels) Type() Type     { return TypeSecretLabels }
func (*SecretGrant) Type() Type      { return TypeSecretGrant }
func (*SecretRevoke) Type() Type     { return TypeSecretRevoke }
func (*SecretCreate) Version() uint8 { return 2 }
func (*SecretRemove) Version() uint8 { return 1 }
func (*SecretLabels) Version() uint8 { return 1 }
func (*SecretGrant) Version() uint8  { return 1 }
func (*SecretRevoke) Version() uint8 { return 1 }

// applyTo changes s according to c, or returns why it cannot. It must be
// deterministic and must leave s unchanged when it returns an error.
func applyTo(s *State, c Command) error {
	switch c.(type) {
	case *LeaderReady:
		return nil
	case *ClusterInit:
	default:
		if s.Cluster == nil {
			return ErrNotInitialized
		}
	}
	switch c := c.(type) {
	case *ClusterInit:
		if s.Cluster != nil {
			return ErrAlreadyInitialized
		}
		if err := c.Cluster.Settings.Validate(); err != nil {
			return err
		}
		if c.Cluster.Settings.Autolock == (c.Cluster.UnlockKey == "") {
			return fmt.Errorf("%w: autolock on needs an unlock key, and off none", ErrBadSetting)
		}
		if c.Cluster.ID == "" || c.First.ID == "" || c.First.Role != ca.RoleManager {
			return fmt.Errorf("%w: cluster init needs a cluster ID and a first manager", ErrMalformedCommand)
		}
		cl := c.Cluster
		first := c.First
		s.Cluster = &cl
		s.Nodes[first.ID] = &first
	case *NodeAdd:
		if err := s.checkNodeAdd(c); err != nil {
			return err
		}
		n := c.Node
		s.Nodes[n.ID] = &n
	case *NodeSetRole:
		n, err := s.checkSetRole(c)
		if err != nil {
			return err
		}
		n.Role = c.Role
	case *NodeRemove:
		if _, err := s.checkNodeRemove(c); err != nil {
			return err
		}
		delete(s.Nodes, c.ID)
		s.Removed[c.ID] = c.Until
		s.Secrets.RevokeNode(c.ID)
	case *NodeUpdate:
		n, ok := s.Nodes[c.ID]
		if !ok {
			return errorf(ErrNodeNotFound, "node %s not found", c.ID)
		}
		if c.Addr != "" {
			n.Addr = c.Addr
		}
		if !c.CertExpiresAt.IsZero() {
			n.CertExpiresAt = c.CertExpiresAt
			// A renewal that does not say which certificate it issued
			// (an older leader's) leaves no stale record behind.
			n.CertSerial, n.CertKeySHA256 = c.CertSerial, c.CertKeySHA256
		}
		if c.GossipAddr != "" {
			n.GossipAddr = c.GossipAddr
		}
	case *TokenRotate:
		switch c.Role {
		case ca.RoleManager:
			s.Cluster.ManagerToken = c.Token
		case ca.RoleWorker:
			s.Cluster.WorkerToken = c.Token
		default:
			return ErrBadRole
		}
	case *SettingsUpdate:
		if err := c.Settings.Validate(); err != nil {
			return err
		}
		// Autolock changes only through AutolockSet, with its key.
		autolock := s.Cluster.Settings.Autolock
		s.Cluster.Settings = c.Settings
		s.Cluster.Settings.Autolock = autolock
	case *AutolockSet:
		if c.Enabled == (c.UnlockKey == "") {
			return fmt.Errorf("%w: autolock on needs an unlock key, and off none", ErrBadSetting)
		}
		s.Cluster.Settings.Autolock = c.Enabled
		s.Cluster.UnlockKey = c.UnlockKey
	case *KeysRotate:
		if s.Keys == nil {
			s.Keys = overlaykeys.Keyrings{}
		}
		return s.Keys.Apply(c.Rotation)
	case *SecretCreate:
		return s.Secrets.ApplyCreate(c.CreateCmd, s.nodeExists)
	case *SecretRemove:
		return s.Secrets.ApplyRemove(c.RemoveCmd)
	case *SecretLabels:
		return s.Secrets.ApplySetLabels(c.SetLabelsCmd)
	case *SecretGrant:
		return s.Secrets.ApplyGrant(c.GrantCmd, s.nodeExists)
	case *SecretRevoke:
		return s.Secrets.ApplyRevoke(c.RevokeCmd)
	case *NodeLevel:
		n, ok := s.Nodes[c.ID]
		if !ok {
			return errorf(ErrNodeNotFound, "node %s not found", c.ID)
		}
		if c.Level < LowestLevel {
			return fmt.Errorf("%w: level %d", ErrMalformedCommand, c.Level)
		}
		n.Level, n.Commands = c.Level, c.Commands
	case *CARotateStart, *CARotateNode, *CARotateFinish:
		return s.applyCA(c)
	case *NodeAddr:
		return s.applyNodeAddr(c)
	default:
		return fmt.Errorf("%w: %T", ErrUnknownCommand, c)
	}
	return nil
}

// nodeExists answers from this state, as secrets' grants require.
func (s *State) nodeExists(id string) bool {
	_, ok := s.Nodes[id]
	return ok
}

// errorf wraps sentinel with a message that replaces the sentinel's text.
func errorf(sentinel error, format string, args ...any) error {
	return &wrapped{msg: fmt.Sprintf(format, args...), err: sentinel}
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// certVersion is the version of a node command (node.add, node.update,
// cluster.init's first node): 2 when it records a certificate's serial and
// key hash, else 1, so a command without them is encoded exactly as
// before they were kept and every build reads it.
func certVersion(serial, keyHash string) uint8 {
	if serial != "" || keyHash != "" {
		return 2
	}
	return 1
}
