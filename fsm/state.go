package fsm

import (
	"errors"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/overlaykeys"
	"github.com/holdfast/holdfast/secrets"
	"sort"
	"time"
)

// Errors a command can fail with when applied. They are the same on every
// replica.
var (
	ErrNotInitialized     = errors.New("cluster is not initialized")
	ErrAlreadyInitialized = errors.New("cluster is already initialized")
	ErrNodeNotFound       = errors.New("node not found")
	ErrNodeExists         = errors.New("node already exists")
	ErrNodeRemoved        = errors.New("node was removed from the cluster")
	ErrLastManager        = errors.New("cannot remove or demote the last manager")
	ErrBadRole            = errors.New("role must be manager or worker")
	ErrBadSetting         = errors.New("invalid cluster setting")
)

// State is the whole replicated state. It is serialised as JSON in snapshots,
// so every field is exported and tagged.
type State struct {
	Cluster *Cluster         `json:"cluster,omitempty"`
	Nodes   map[string]*Node `json:"nodes"`
	// Removed is the deny list: node ID → when its last certificate expires.
	// A removed node is refused on every protocol until then.
	Removed map[string]time.Time `json:"removed"`
	// Secrets are owned by package secrets; Apply routes to it.
	Secrets secrets.Store `json:"secrets"`
	// Keys are the data-plane keyrings, owned by package overlaykeys.
	Keys overlaykeys.Keyrings `json:"keys,omitempty"`
	// CARotation is the current or last CA rotation (carotation.go).
	CARotation *CARotation `json:"ca_rotation,omitempty"`
}

// Cluster holds the cluster's identity, its CA and its settings.
type Cluster struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	Settings  Settings  `json:"settings"`
	// RootCertPEM and RootKeyPEM are the cluster CA. Every manager holds the
	// key so that any of them can issue certificates.
	RootCertPEM []byte `json:"root_cert_pem"`
	RootKeyPEM  []byte `json:"root_key_pem"`
	// Join tokens, in their HFTKN-1-… string form.
	WorkerToken  string `json:"worker_token"`
	ManagerToken string `json:"manager_token"`
	// UnlockKey is the current autolock unlock key (HFKEY-1-…), empty with
	// autolock off. Every manager derives its KEK from it and re-wraps its
	// own DEK and TLS key when it changes. It lives only in the sealed log.
	UnlockKey string `json:"unlock_key,omitempty"`
}

// Settings are the operator-changeable cluster settings.
type Settings struct {
	CertExpiry  time.Duration `json:"cert_expiry"`
	KeyRotation time.Duration `json:"key_rotation"`
	Autolock    bool          `json:"autolock"`
}

// Limits on settings, checked when applied.
const (
	MinCertExpiry  = time.Hour
	MinKeyRotation = 10 * time.Second
)

// Validate checks the settings' ranges.
func (s Settings) Validate() error {
	if s.CertExpiry < MinCertExpiry {
		return errorf(ErrBadSetting, "cert expiry %s is below the minimum of %s", s.CertExpiry, MinCertExpiry)
	}
	if s.KeyRotation < MinKeyRotation {
		return errorf(ErrBadSetting, "key rotation %s is below the minimum of %s", s.KeyRotation, MinKeyRotation)
	}
	return nil
}

// Node is one member of the cluster, manager or worker.
type Node struct {
	ID            string    `json:"id"`
	Role          ca.Role   `json:"role"`
	Addr          string    `json:"addr"`
	CreatedAt     time.Time `json:"created_at"`
	CertExpiresAt time.Time `json:"cert_expires_at"`
	// GossipAddr is where the node's memberlist listens, once it has
	// started gossiping.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// CertSerial and CertKeySHA256 identify the latest certificate issued
	// to the node (ca.Record): only that one may be recovered once it has
	// expired. Empty in records written before they were kept.
	CertSerial    string `json:"cert_serial,omitempty"`
	CertKeySHA256 string `json:"cert_key_sha256,omitempty"`
	// Level is, for a manager, the level its build advertised when the
	// leader last recorded it (NodeLevel); 0 until then.
	Level int `json:"level,omitempty"`
	// Commands are the command types and versions that build can apply,
	// as "type/version".
	Commands []string `json:"commands,omitempty"`
}

func newState() *State {
	return &State{Nodes: map[string]*Node{}, Removed: map[string]time.Time{}}
}

// SortedNodes returns the nodes ordered by ID.
func (s *State) SortedNodes() []*Node {
	out := make([]*Node, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Managers counts the nodes whose role is manager.
func (s *State) Managers() int {
	n := 0
	for _, node := range s.Nodes {
		if node.Role == ca.RoleManager {
			n++
		}
	}
	return n
}

// IsRemoved reports whether id is on the deny list at time now.
func (s *State) IsRemoved(id string, now time.Time) bool {
	until, ok := s.Removed[id]
	return ok && now.Before(until)
}
