package secrets

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// The payloads of the secrets commands. The fsm package wraps each in its
// typed, versioned envelope and routes it to the matching Store.Apply
// method. Every value that depends on the clock or on randomness (the ID,
// the times) is chosen by the leader before proposing, so that applying is
// deterministic.

// CreateCmd creates a secret. Its JSON includes Data: it is only for the raft
// log, which is sealed. Printing it (fmt, slog) never shows Data.
type CreateCmd struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Data      []byte            `json:"data"`
	Labels    map[string]string `json:"labels,omitempty"`
	Grants    []string          `json:"grants,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
}

// RemoveCmd removes the secret Ref (an ID or a name).
type RemoveCmd struct {
	Ref string `json:"ref"`
}

// SetLabelsCmd replaces the labels of the secret Ref.
type SetLabelsCmd struct {
	Ref    string            `json:"ref"`
	Labels map[string]string `json:"labels,omitempty"`
	At     time.Time         `json:"at"`
}

// GrantCmd grants the secret Ref to node NodeID.
type GrantCmd struct {
	Ref    string    `json:"ref"`
	NodeID string    `json:"node_id"`
	At     time.Time `json:"at"`
}

// RevokeCmd revokes node NodeID's grant of the secret Ref.
type RevokeCmd struct {
	Ref    string    `json:"ref"`
	NodeID string    `json:"node_id"`
	At     time.Time `json:"at"`
}

// ApplyCreate creates the secret c describes. Every granted node must exist
// (nodeExists; nil refuses every grant), else ErrUnknownNode; the other
// errors are New's and Create's.
func (st *Store) ApplyCreate(c CreateCmd, nodeExists func(string) bool) error {
	s, err := st.checkCreate(c, nodeExists)
	if err != nil {
		return err
	}
	st.insert(s)
	return nil
}

// checkCreate is what ApplyCreate and CheckCreate check; it returns the
// secret to insert.
func (st *Store) checkCreate(c CreateCmd, nodeExists func(string) bool) (*Secret, error) {
	s, err := New(c.ID, c.Name, c.Data, c.Labels, c.Grants, c.CreatedAt)
	if err != nil {
		return nil, err
	}
	for _, g := range s.Grants {
		if nodeExists == nil || !nodeExists(g) {
			return nil, errorf(ErrUnknownNode, "cannot grant secret %q to unknown node %q", s.Name, g)
		}
	}
	if err := st.checkFree(s); err != nil {
		return nil, err
	}
	return s, nil
}

// ApplyRemove removes the secret c.Ref names.
func (st *Store) ApplyRemove(c RemoveCmd) error {
	_, err := st.Remove(c.Ref)
	return err
}

// ApplySetLabels replaces the labels of the secret c.Ref names.
func (st *Store) ApplySetLabels(c SetLabelsCmd) error {
	return st.SetLabels(c.Ref, c.Labels, c.At)
}

// ApplyGrant grants a secret to a node that must exist (nodeExists).
func (st *Store) ApplyGrant(c GrantCmd, nodeExists func(string) bool) error {
	return st.Grant(c.Ref, c.NodeID, nodeExists, c.At)
}

// ApplyRevoke revokes a node's grant of a secret.
func (st *Store) ApplyRevoke(c RevokeCmd) error {
	return st.Revoke(c.Ref, c.NodeID, c.At)
}

// String describes the command without its data.
func (c CreateCmd) String() string {
	return fmt.Sprintf("create secret %q (id %s, %d bytes)", c.Name, c.ID, len(c.Data))
}

// GoString is like %#v but with Data replaced by its size.
func (c CreateCmd) GoString() string {
	return fmt.Sprintf("secrets.CreateCmd{ID:%q, Name:%q, Data:<redacted %d bytes>, Labels:%#v, Grants:%#v, CreatedAt:%s}",
		c.ID, c.Name, len(c.Data), c.Labels, c.Grants, c.CreatedAt.Format(time.RFC3339Nano))
}

// Format makes every fmt verb print String (GoString for %#v).
func (c CreateCmd) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// LogValue is the command without its data.
func (c CreateCmd) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", c.ID),
		slog.String("name", c.Name),
		slog.Int("size", len(c.Data)),
	)
}

// The Check methods tell, without changing the store, whether the matching
// Apply method would refuse the command now, and with which error. The
// leader checks a command before it enters the log, so a write that would
// fail never carries its data into every manager's log; Apply checks
// again, since the state may change between the two.

// CheckCreate is ApplyCreate's checks.
func (st *Store) CheckCreate(c CreateCmd, nodeExists func(string) bool) error {
	_, err := st.checkCreate(c, nodeExists)
	return err
}

// CheckRemove is ApplyRemove's checks.
func (st *Store) CheckRemove(c RemoveCmd) error {
	_, err := st.mustLookup(c.Ref)
	return err
}

// CheckSetLabels is ApplySetLabels' checks.
func (st *Store) CheckSetLabels(c SetLabelsCmd) error {
	s, err := st.mustLookup(c.Ref)
	if err != nil {
		return err
	}
	if err := ValidateLabels(c.Labels); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	return nil
}

// CheckGrant is ApplyGrant's checks.
func (st *Store) CheckGrant(c GrantCmd, nodeExists func(string) bool) error {
	s, err := st.mustLookup(c.Ref)
	if err != nil {
		return err
	}
	if !validNodeID(c.NodeID) || nodeExists == nil || !nodeExists(c.NodeID) {
		return errorf(ErrUnknownNode, "cannot grant secret %q to unknown node %q", s.Name, c.NodeID)
	}
	return nil
}

// CheckRevoke is ApplyRevoke's checks.
func (st *Store) CheckRevoke(c RevokeCmd) error {
	_, err := st.mustLookup(c.Ref)
	return err
}
