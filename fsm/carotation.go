package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// CA rotation commands (type range 20–29).
const (
	TypeCARotateStart  Type = 20
	TypeCARotateNode   Type = 21
	TypeCARotateFinish Type = 22
)

// Errors of CA rotation commands.
var (
	ErrRotationInProgress = errors.New("a CA rotation is already in progress")
	ErrNoRotation         = errors.New("no CA rotation is in progress")
)

// CARotation is a CA rotation, in progress while FinishedAt is zero. The
// new root issues every certificate from its start; Converted records the
// nodes that have shown a certificate from it. When every node has, the
// leader commits CARotateFinish: the new root replaces the old one, the
// join tokens change, and the record stays (without the key) so that
// progress can be told after the fact.
type CARotation struct {
	ID         string          `json:"id"`
	OldDigest  string          `json:"old_digest"`
	NewDigest  string          `json:"new_digest"`
	NewCertPEM []byte          `json:"new_cert_pem"`
	NewKeyPEM  []byte          `json:"new_key_pem,omitempty"`
	CrossPEM   []byte          `json:"cross_pem,omitempty"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	Converted  map[string]bool `json:"converted"`
}

// InProgress reports whether r is a rotation that has not finished.
func (r *CARotation) InProgress() bool { return r != nil && r.FinishedAt.IsZero() }

// CARotateStart starts a rotation to a new root, cross-signed by the
// current one. The manager that proposes it made and checked both
// (ca.NewRotation); OldDigest must be the current root's.
type CARotateStart struct {
	ID         string    `json:"id"`
	OldDigest  string    `json:"old_digest"`
	NewDigest  string    `json:"new_digest"`
	NewCertPEM []byte    `json:"new_cert_pem"`
	NewKeyPEM  []byte    `json:"new_key_pem"`
	CrossPEM   []byte    `json:"cross_pem"`
	StartedAt  time.Time `json:"started_at"`
}

// CARotateNode records that a node holds a certificate from the new root.
type CARotateNode struct {
	ID     string `json:"id"`
	NodeID string `json:"node_id"`
}

// CARotateFinish ends rotation ID: the new root becomes the root, and the
// join tokens (which pin it) are replaced.
type CARotateFinish struct {
	ID           string    `json:"id"`
	WorkerToken  string    `json:"worker_token"`
	ManagerToken string    `json:"manager_token"`
	FinishedAt   time.Time `json:"finished_at"`
}

func (*CARotateStart) Type() Type      { return TypeCARotateStart }
func (*CARotateNode) Type() Type       { return TypeCARotateNode }
func (*CARotateFinish) Type() Type     { return TypeCARotateFinish }
func (*CARotateStart) Version() uint8  { return 1 }
func (*CARotateNode) Version() uint8   { return 1 }
func (*CARotateFinish) Version() uint8 { return 1 }

// RootDigest returns the digest (ca.DigestOf) of the cluster's root
// certificate; empty if it cannot be read.
func (c *Cluster) RootDigest() string {
	certs, err := ca.ParseCertPEM(c.RootCertPEM)
	if err != nil || len(certs) != 1 {
		return ""
	}
	return ca.DigestOf(certs[0].Raw)
}

// applyCA applies a CA rotation command; s.Cluster is set.
func (s *State) applyCA(c Command) error {
	switch c := c.(type) {
	case *CARotateStart:
		if s.CARotation.InProgress() {
			return errorf(ErrRotationInProgress, "CA rotation %s is in progress", s.CARotation.ID)
		}
		if c.ID == "" || c.NewDigest == "" || len(c.NewCertPEM) == 0 || len(c.NewKeyPEM) == 0 || len(c.CrossPEM) == 0 {
			return fmt.Errorf("%w: CA rotation start needs an ID, the new root and its cross-signed certificate", ErrMalformedCommand)
		}
		if c.OldDigest != s.Cluster.RootDigest() {
			return fmt.Errorf("%w: the root changed since the rotation was prepared", ErrBadSetting)
		}
		if err := checkRotation(s.Cluster, c); err != nil {
			return err
		}
		s.CARotation = &CARotation{
			ID: c.ID, OldDigest: c.OldDigest, NewDigest: c.NewDigest,
			NewCertPEM: bytes.Clone(c.NewCertPEM), NewKeyPEM: bytes.Clone(c.NewKeyPEM), CrossPEM: bytes.Clone(c.CrossPEM),
			StartedAt: c.StartedAt, Converted: map[string]bool{},
		}
	case *CARotateNode:
		r := s.CARotation
		if !r.InProgress() || r.ID != c.ID {
			return errorf(ErrNoRotation, "CA rotation %s is not in progress", c.ID)
		}
		if _, ok := s.Nodes[c.NodeID]; !ok {
			return errorf(ErrNodeNotFound, "node %s not found", c.NodeID)
		}
		r.Converted[c.NodeID] = true
	case *CARotateFinish:
		r := s.CARotation
		if !r.InProgress() || r.ID != c.ID {
			return errorf(ErrNoRotation, "CA rotation %s is not in progress", c.ID)
		}
		if w := s.RotationWaiting(); len(w) > 0 {
			return fmt.Errorf("%w: %d nodes have no certificate from the new root yet", ErrBadSetting, len(w))
		}
		if c.WorkerToken == "" || c.ManagerToken == "" || c.FinishedAt.IsZero() {
			return fmt.Errorf("%w: CA rotation finish needs both join tokens and a time", ErrMalformedCommand)
		}
		s.Cluster.RootCertPEM, s.Cluster.RootKeyPEM = r.NewCertPEM, r.NewKeyPEM
		s.Cluster.WorkerToken, s.Cluster.ManagerToken = c.WorkerToken, c.ManagerToken
		r.NewKeyPEM, r.CrossPEM = nil, nil // the key lives on in Cluster only
		r.FinishedAt = c.FinishedAt
	default:
		return fmt.Errorf("%w: %T", ErrUnknownCommand, c)
	}
	return nil
}

// checkRotation checks a start's new root and cross-signed certificate
// against the current root, as ca.LoadRotation does.
func checkRotation(cl *Cluster, c *CARotateStart) error {
	old, err := ca.ParseRoot(cl.RootCertPEM, cl.RootKeyPEM)
	if err != nil {
		return fmt.Errorf("%w: current root: %v", ErrBadSetting, err)
	}
	next, err := ca.ParseRoot(c.NewCertPEM, c.NewKeyPEM)
	if err != nil {
		return fmt.Errorf("%w: new root: %v", ErrBadSetting, err)
	}
	if next.Digest() != c.NewDigest || next.ClusterID() != old.ClusterID() {
		return fmt.Errorf("%w: the new root is not the one named, or not this cluster's", ErrBadSetting)
	}
	if _, err := ca.LoadRotation(old, next, c.CrossPEM); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSetting, err)
	}
	return nil
}

// RotationWaiting returns the IDs, sorted, of the nodes the CA rotation in
// progress still waits for; nil when none is in progress.
func (s *State) RotationWaiting() []string {
	if !s.CARotation.InProgress() {
		return nil
	}
	var out []string
	for _, n := range s.SortedNodes() {
		if !s.CARotation.Converted[n.ID] {
			out = append(out, n.ID)
		}
	}
	return out
}
