package api

import (
	"time"

	"github.com/holdfast/holdfast/ca"
)

// Node states, as `status` shows them.
const (
	StateUninitialized = "uninitialized"
	StateLocked        = "locked"
	StateReady         = "ready"
	// StateNeedsUpgrade is a manager that met a log entry its build
	// cannot apply: it applies nothing more and serves no reads until it
	// is restarted on a build that knows the entry.
	StateNeedsUpgrade = "needs-upgrade"
	// StateRemoved is a node the cluster removed ('node rm'): it wiped its
	// cluster state and serves nothing until it joins again with a token.
	// It stays removed across restarts.
	StateRemoved = "removed"
	// StateCatchingUp is a manager that has not yet applied what the
	// leader had committed when it started or was unlocked; CatchingUp
	// says how far it is.
	StateCatchingUp = "catching-up"
)

// Status is GET /v1/status and `holdfast status --format json`.
type Status struct {
	NodeID    string          `json:"node_id"`
	ClusterID string          `json:"cluster_id"`
	Role      ca.Role         `json:"role"`
	State     string          `json:"state"`
	Addr      string          `json:"addr"`
	Autolock  bool            `json:"autolock"`
	IsLeader  bool            `json:"is_leader"`
	Leader    Leader          `json:"leader"`
	Raft      RaftStatus      `json:"raft"`
	Managers  []ManagerStatus `json:"managers"`
	// Gossip is this node's memberlist, once it gossips.
	Gossip *GossipStatus `json:"gossip,omitempty"`
	// Level is the level of this node's build: what it can apply
	// (docs/OPERATIONS.md, "Versions and levels"); Commands lists it as
	// "type/version".
	Level    int      `json:"level,omitempty"`
	Commands []string `json:"commands,omitempty"`
	// ClusterVersion is, on a manager, the lowest level among the
	// managers as this manager knows it: what the leader may propose.
	ClusterVersion int `json:"cluster_version,omitempty"`
	// NeedsUpgrade names the entry this manager stopped at, in state
	// needs-upgrade.
	NeedsUpgrade *NeedsUpgrade `json:"needs_upgrade,omitempty"`
	// ClockSkew is, on a manager, how far its wall clock is off the
	// median of the managers' clocks, as it measured; nil until it has
	// heard from another manager.
	ClockSkew *ClockSkew `json:"clock_skew,omitempty"`
	// CatchingUp is how far a manager in state catching-up is.
	CatchingUp *CatchingUp `json:"catching_up,omitempty"`
}

// ClockSkew is a manager's estimate of its clock's offset from the other
// managers' (positive: its clock is ahead).
type ClockSkew struct {
	// OffsetSeconds is the offset; Peers how many other managers answered
	// the measurement; AllowedSeconds the offset beyond which the manager
	// refuses to issue certificates (Refusing).
	OffsetSeconds  float64 `json:"offset_seconds"`
	Peers          int     `json:"peers"`
	AllowedSeconds float64 `json:"allowed_seconds"`
	Refusing       bool    `json:"refusing"`
}

// CatchingUp is a manager's progress towards the leader's commit index as
// it was when the manager started or was unlocked: AppliedIndex is where
// its state is, TargetIndex where it must get to (0 while it has not
// learnt it from the leader yet).
type CatchingUp struct {
	AppliedIndex uint64 `json:"applied_index"`
	TargetIndex  uint64 `json:"target_index"`
}

// NeedsUpgrade is the log entry a manager cannot apply: its index, and
// its command type and version.
type NeedsUpgrade struct {
	Index   uint64 `json:"index"`
	Command string `json:"command"`
	Version uint8  `json:"version"`
}

// LevelInfo is GET /internal/v1/level: what a manager's build can apply.
// The leader asks every manager; one that has no such route (a build from
// before levels) counts as the lowest level.
type LevelInfo struct {
	Level    int           `json:"level"`
	Commands []string      `json:"commands"`
	Stopped  *NeedsUpgrade `json:"needs_upgrade,omitempty"`
	// Time is the answering manager's wall clock when it answered; the
	// asker estimates its clock's offset from it (docs/OPERATIONS.md,
	// "Clocks"). Zero from a build from before it was sent.
	Time time.Time `json:"time,omitzero"`
	// LogSyncSeconds is the median time the answering manager's disk took
	// to write and sync a batch of raft entries over the last 10 s, from
	// LogSyncSamples batches; both are omitted with fewer than 8. The
	// leader compares them with its own to hand over when its disk is
	// the slow one (docs/OPERATIONS.md, "A manager with a slow disk").
	LogSyncSeconds float64 `json:"log_sync_seconds,omitempty"`
	LogSyncSamples int     `json:"log_sync_samples,omitempty"`
}

// GossipStatus is this node's gossip: where it listens, how many members
// it sees alive (itself included), and the Lamport time of the gossip key
// it encrypts with.
type GossipStatus struct {
	Addr           string `json:"addr"`
	Members        int    `json:"members"`
	PrimaryLamport uint64 `json:"primary_lamport"`
}

// Leader names the current raft leader; empty when there is none.
type Leader struct {
	NodeID string `json:"node_id"`
	Addr   string `json:"addr"`
}

// RaftStatus is this node's view of the raft log.
type RaftStatus struct {
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

// ManagerStatus is one member of the raft configuration.
type ManagerStatus struct {
	NodeID    string `json:"node_id"`
	Addr      string `json:"addr"`
	Leader    bool   `json:"leader"`
	Voter     bool   `json:"voter"`
	Reachable bool   `json:"reachable"`
}

// Node is one entry of GET /v1/nodes and `node ls --format json`.
type Node struct {
	ID            string    `json:"id"`
	Role          ca.Role   `json:"role"`
	Addr          string    `json:"addr"`
	Status        string    `json:"status"`
	Leader        bool      `json:"leader"`
	Voter         bool      `json:"voter"`
	CertExpiresAt time.Time `json:"cert_expires_at"`
	CreatedAt     time.Time `json:"created_at"`
	GossipAddr    string    `json:"gossip_addr,omitempty"`
	// Level is, for a manager, its build's level as the cluster recorded
	// it (0: not recorded yet, or a build from before levels); Commands
	// lists what it can apply, as "type/version".
	Level    int      `json:"level,omitempty"`
	Commands []string `json:"commands,omitempty"`
}

// Node statuses.
const (
	NodeReady   = "ready"
	NodeDown    = "down"
	NodeUnknown = "unknown"
)

// InitRequest is POST /v1/init. Durations are Go duration strings; empty
// means the default.
type InitRequest struct {
	Autolock        bool   `json:"autolock,omitempty"`
	CertExpiry      string `json:"cert_expiry,omitempty"`
	KeyRotation     string `json:"key_rotation,omitempty"`
	CACertPEM       string `json:"ca_cert,omitempty"`
	CAKeyPEM        string `json:"ca_key,omitempty"`
	ForceNewCluster bool   `json:"force_new_cluster,omitempty"`
}

// InitResponse answers InitRequest.
type InitResponse struct {
	ClusterID    string `json:"cluster_id"`
	NodeID       string `json:"node_id"`
	Addr         string `json:"addr"`
	WorkerToken  string `json:"worker_token"`
	ManagerToken string `json:"manager_token"`
	UnlockKey    string `json:"unlock_key,omitempty"`
}

// JoinRequest is POST /v1/join: join the cluster at Addr with Token.
type JoinRequest struct {
	Token string `json:"token"`
	Addr  string `json:"addr"`
}

// JoinResponse answers JoinRequest.
type JoinResponse struct {
	ClusterID string  `json:"cluster_id"`
	NodeID    string  `json:"node_id"`
	Role      ca.Role `json:"role"`
}

// LeaveRequest is POST /v1/leave.
type LeaveRequest struct {
	Force bool `json:"force,omitempty"`
}

// UpdateRequest is PATCH /v1/cluster. Nil fields stay as they are.
type UpdateRequest struct {
	Autolock    *bool   `json:"autolock,omitempty"`
	CertExpiry  *string `json:"cert_expiry,omitempty"`
	KeyRotation *string `json:"key_rotation,omitempty"`
}

// UpdateResponse answers UpdateRequest.
type UpdateResponse struct {
	UnlockKey string `json:"unlock_key,omitempty"`
}

// JoinToken is GET /v1/join-tokens/{role}.
type JoinToken struct {
	Role  ca.Role `json:"role"`
	Token string  `json:"token"`
}

// --- node API (holdfast-api/1) and join API (holdfast-join/1) ---

// JoinGrantRequest is what a joiner sends: the token, a CSR, and the
// address other nodes reach it at. Followers forward it to the leader.
type JoinGrantRequest struct {
	Token string `json:"token"`
	CSR   []byte `json:"csr"`
	Addr  string `json:"addr"`
	// Level is the joiner's build level. It travels as the query
	// parameter "level" (a body field would be refused by builds from
	// before levels); 0 is a joiner that sent none.
	Level int `json:"-"`
}

// JoinGrant is the answer: who the joiner now is, and its certificate.
type JoinGrant struct {
	ClusterID string     `json:"cluster_id"`
	NodeID    string     `json:"node_id"`
	Role      ca.Role    `json:"role"`
	CertPEM   []byte     `json:"cert_pem"`
	RootPEM   []byte     `json:"root_pem"`
	Managers  []PeerAddr `json:"managers"`
}

// PeerAddr is a manager's ID and address.
type PeerAddr struct {
	NodeID string `json:"node_id"`
	Addr   string `json:"addr"`
}

// ReadIndex is the leader's answer to a follower's linearizable read.
type ReadIndex struct {
	Index uint64 `json:"index"`
}

// AddVoterRequest asks the leader to add the calling manager to raft.
type AddVoterRequest struct {
	// NodeID is set when a follower forwards the request for the joining
	// manager; empty means the caller itself.
	NodeID string `json:"node_id,omitempty"`
	Addr   string `json:"addr"`
}

// LeaveNodeRequest asks the leader to remove the calling node.
type LeaveNodeRequest struct {
	Force bool `json:"force,omitempty"`
}

// SelfView is what a node learns about itself from a manager
// (GET /internal/v1/self, long-polled with ?index=).
type SelfView struct {
	Index     uint64     `json:"index"`
	ClusterID string     `json:"cluster_id"`
	Node      *Node      `json:"node,omitempty"`
	Removed   bool       `json:"removed"`
	Managers  []PeerAddr `json:"managers"`
	// Secrets are the secrets granted to the node, without their data.
	Secrets []SecretRef `json:"secrets"`
	// Keyrings are the data-plane keyrings, with material, and
	// GossipPeers where some other nodes gossip: a bounded sample, the
	// managers first, enough to join the gossip mesh (older managers
	// send every other node).
	Keyrings    []Keyring  `json:"keyrings,omitempty"`
	GossipPeers []PeerAddr `json:"gossip_peers,omitempty"`
	// CA is the cluster's CA as the node must follow it (ca.go).
	CA *CAView `json:"ca,omitempty"`
}

// RenewRequest asks for a new certificate for the calling node, with the
// role the cluster now gives it.
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// RenewResponse carries the new certificate.
type RenewResponse struct {
	Role    ca.Role `json:"role"`
	CertPEM []byte  `json:"cert_pem"`
	RootPEM []byte  `json:"root_pem"`
}

// Reachability is the leader's view of which managers answer heartbeats.
type Reachability struct {
	Reachable map[string]bool `json:"reachable"`
}

// UnlockRequest is POST /v1/unlock: an unlock key (HFKEY-1-…) or one share
// of it (HFSHR-1-…).
type UnlockRequest struct {
	Key string `json:"key"`
}

// UnlockResponse answers UnlockRequest. While shares are being collected,
// State stays "locked" and Shares/SharesNeeded tell the progress.
type UnlockResponse struct {
	State        string `json:"state"`
	Shares       int    `json:"shares,omitempty"`
	SharesNeeded int    `json:"shares_needed,omitempty"`
}

// UnlockKeyResponse is GET /v1/unlock-key and the answer to a rotation.
type UnlockKeyResponse struct {
	UnlockKey string   `json:"unlock_key"`
	Shares    []string `json:"shares,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
}

// RotateUnlockKeyRequest is POST /v1/unlock-key/rotate; with Shares and
// Threshold the new key is also returned split m-of-n.
type RotateUnlockKeyRequest struct {
	Shares    int `json:"shares,omitempty"`
	Threshold int `json:"threshold,omitempty"`
}

// ApplyBatchResponse answers POST /internal/v1/apply-batch: one result per
// command, in order.
type ApplyBatchResponse struct {
	Results []ApplyResult `json:"results"`
}

// ApplyResult is one forwarded command's outcome: Status 200, or the HTTP
// status, code and message its error would have had had it been forwarded
// alone. Code is absent in answers from builds older than error codes.
type ApplyResult struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	Code   Code   `json:"code,omitempty"`
}
