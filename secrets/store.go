package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"time"
)

// Store is the replicated part of the secrets state: secrets by ID, with an
// index by name. The zero value is an empty store ready to use.
//
// A Store is not safe for concurrent use; the FSM guards it with its lock.
// Mutating methods are deterministic (no clock, no randomness: IDs and times
// come in the arguments), so every replica applying the same commands
// reaches the same state, and each leaves the store unchanged when it
// returns an error.
//
// Secrets returned by Get, GrantedTo and Remove belong to the caller: they
// share nothing with the store.
//
// A reference (nameOrID) is first looked up as an ID and then as a name, so
// when a secret's ID equals another secret's name, the reference means the
// secret with that ID.
type Store struct {
	byID   map[string]*Secret
	byName map[string]string // name → ID
	// byNode indexes grants: node ID → IDs of the secrets granted to it,
	// so that GrantedTo, which every node asks after every change, costs
	// what that node is granted, not what the cluster stores.
	byNode map[string]map[string]struct{}
}

// Len returns the number of secrets.
func (st *Store) Len() int { return len(st.byID) }

// Get returns a copy of the secret whose ID is ref or, failing that, whose
// name is ref.
func (st *Store) Get(ref string) (*Secret, bool) {
	s := st.lookup(ref)
	if s == nil {
		return nil, false
	}
	return s.Clone(), true
}

func (st *Store) lookup(ref string) *Secret {
	if s, ok := st.byID[ref]; ok {
		return s
	}
	if id, ok := st.byName[ref]; ok {
		return st.byID[id]
	}
	return nil
}

func (st *Store) mustLookup(ref string) (*Secret, error) {
	s := st.lookup(ref)
	if s == nil {
		return nil, errorf(ErrNotFound, "secret %q not found", ref)
	}
	return s, nil
}

// List returns every secret's metadata, sorted by name.
func (st *Store) List() []Meta {
	out := make([]Meta, 0, len(st.byID))
	for _, s := range st.sortedByName() {
		out = append(out, s.Meta())
	}
	return out
}

// GrantedTo returns copies of the secrets granted to nodeID, sorted by name.
func (st *Store) GrantedTo(nodeID string) []*Secret {
	var out []*Secret
	for id := range st.byNode[nodeID] {
		out = append(out, st.byID[id].Clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (st *Store) indexGrant(nodeID, id string) {
	if st.byNode == nil {
		st.byNode = map[string]map[string]struct{}{}
	}
	ids := st.byNode[nodeID]
	if ids == nil {
		ids = map[string]struct{}{}
		st.byNode[nodeID] = ids
	}
	ids[id] = struct{}{}
}

func (st *Store) unindexGrant(nodeID, id string) {
	ids := st.byNode[nodeID]
	delete(ids, id)
	if len(ids) == 0 {
		delete(st.byNode, nodeID)
	}
}

func (st *Store) sortedByName() []*Secret {
	out := make([]*Secret, 0, len(st.byID))
	for _, s := range st.byID {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Create adds a copy of s, which must be valid (Secret.Validate; New makes
// valid secrets). It refuses a name or ID already in use (ErrNameTaken,
// ErrIDTaken). It does not check that granted nodes exist: ApplyCreate does.
func (st *Store) Create(s *Secret) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := st.checkFree(s); err != nil {
		return err
	}
	c := s.Clone()
	c.CreatedAt = normTime(c.CreatedAt)
	c.UpdatedAt = normTime(c.UpdatedAt)
	st.insert(c)
	return nil
}

func (st *Store) checkFree(s *Secret) error {
	if _, ok := st.byID[s.ID]; ok {
		return errorf(ErrIDTaken, "secret ID %s is already in use", s.ID)
	}
	if _, ok := st.byName[s.Name]; ok {
		return errorf(ErrNameTaken, "secret name %q is already in use", s.Name)
	}
	return nil
}

func (st *Store) insert(s *Secret) {
	if st.byID == nil {
		st.byID = map[string]*Secret{}
		st.byName = map[string]string{}
	}
	st.byID[s.ID] = s
	st.byName[s.Name] = s.ID
	for _, g := range s.Grants {
		st.indexGrant(g, s.ID)
	}
}

// Remove deletes the secret ref names and returns it.
func (st *Store) Remove(ref string) (*Secret, error) {
	s, err := st.mustLookup(ref)
	if err != nil {
		return nil, err
	}
	delete(st.byID, s.ID)
	delete(st.byName, s.Name)
	for _, g := range s.Grants {
		st.unindexGrant(g, s.ID)
	}
	return s, nil
}

// SetLabels replaces the secret's labels with a copy of labels (nil or
// empty: no labels) and sets its UpdatedAt to now.
func (st *Store) SetLabels(ref string, labels map[string]string, now time.Time) error {
	s, err := st.mustLookup(ref)
	if err != nil {
		return err
	}
	if err := ValidateLabels(labels); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	if err := validTime(now); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	s.Labels = copyLabels(labels)
	s.UpdatedAt = normTime(now)
	return nil
}

// Grant adds nodeID to the secret's grants and sets UpdatedAt to now. It
// refuses a node for which nodeExists returns false (ErrUnknownNode); a nil
// nodeExists refuses every node. Granting a node that already has the
// secret changes nothing and is not an error.
func (st *Store) Grant(ref, nodeID string, nodeExists func(string) bool, now time.Time) error {
	s, err := st.mustLookup(ref)
	if err != nil {
		return err
	}
	if !validNodeID(nodeID) || nodeExists == nil || !nodeExists(nodeID) {
		return errorf(ErrUnknownNode, "cannot grant secret %q to unknown node %q", s.Name, nodeID)
	}
	if err := validTime(now); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	i, ok := slices.BinarySearch(s.Grants, nodeID)
	if ok {
		return nil
	}
	s.Grants = slices.Insert(slices.Clone(s.Grants), i, nodeID)
	s.UpdatedAt = normTime(now)
	st.indexGrant(nodeID, s.ID)
	return nil
}

// Revoke removes nodeID from the secret's grants and sets UpdatedAt to now.
// Revoking a node that does not have the secret changes nothing and is not
// an error (the node need not exist any more).
func (st *Store) Revoke(ref, nodeID string, now time.Time) error {
	s, err := st.mustLookup(ref)
	if err != nil {
		return err
	}
	if err := validTime(now); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	i, ok := slices.BinarySearch(s.Grants, nodeID)
	if !ok {
		return nil
	}
	s.Grants = slices.Delete(slices.Clone(s.Grants), i, i+1)
	if len(s.Grants) == 0 {
		s.Grants = nil
	}
	s.UpdatedAt = normTime(now)
	st.unindexGrant(nodeID, s.ID)
	return nil
}

// RevokeNode removes nodeID from every secret's grants; call it when the
// node leaves the cluster. It leaves UpdatedAt alone: the secrets did not
// change, the cluster did.
func (st *Store) RevokeNode(nodeID string) {
	for id := range st.byNode[nodeID] {
		s := st.byID[id]
		if i, ok := slices.BinarySearch(s.Grants, nodeID); ok {
			s.Grants = slices.Delete(slices.Clone(s.Grants), i, i+1)
			if len(s.Grants) == 0 {
				s.Grants = nil
			}
		}
	}
	delete(st.byNode, nodeID)
}

// storeJSON is the snapshot form: {"secrets": [...]}, sorted by ID. Each
// secret includes its data; snapshots are sealed by raftlog.
type storeJSON struct {
	Secrets []*Secret `json:"secrets"`
}

// MarshalJSON writes the store, data included, for raft snapshots (which
// are sealed before they reach disk). The output is canonical: secrets
// sorted by ID.
func (st Store) MarshalJSON() ([]byte, error) {
	doc := storeJSON{Secrets: make([]*Secret, 0, len(st.byID))}
	for _, s := range st.byID {
		doc.Secrets = append(doc.Secrets, s)
	}
	sort.Slice(doc.Secrets, func(i, j int) bool { return doc.Secrets[i].ID < doc.Secrets[j].ID })
	return json.Marshal(doc)
}

// UnmarshalJSON replaces the store with the one in b (JSON null: an empty
// store). It is strict: unknown fields, trailing data, a secret that fails
// Secret.Validate, or two secrets with one ID or one name are errors
// wrapping ErrBadSnapshot, and leave the store unchanged. Times are
// normalized to UTC. The errors never contain secret data.
func (st *Store) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*st = Store{}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var doc storeJSON
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%w: %s", ErrBadSnapshot, describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the store", ErrBadSnapshot)
	}
	var ns Store
	for i, s := range doc.Secrets {
		if s == nil {
			return fmt.Errorf("%w: secret %d is null", ErrBadSnapshot, i)
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%w: secret %d: %w", ErrBadSnapshot, i, err)
		}
		if err := ns.checkFree(s); err != nil {
			return fmt.Errorf("%w: secret %d: %w", ErrBadSnapshot, i, err)
		}
		if len(s.Labels) == 0 {
			s.Labels = nil
		}
		if len(s.Grants) == 0 {
			s.Grants = nil
		}
		s.CreatedAt = normTime(s.CreatedAt)
		s.UpdatedAt = normTime(s.UpdatedAt)
		ns.insert(s)
	}
	*st = ns
	return nil
}

// describeJSONError says what is wrong with a snapshot without quoting its
// content: syntax and type errors can quote bytes of the input, which may be
// (base64 of) secret data.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("wrong JSON type for %s at offset %d", typ.Field, typ.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	default:
		// Unknown fields (a key, never a value), bad times (not secret),
		// bad base64 (an offset only).
		return err.Error()
	}
}

// String describes the store without any secret's data.
func (st Store) String() string {
	return fmt.Sprintf("secrets.Store{%d secrets}", len(st.byID))
}

// GoString is String: %#v must not print the secrets.
func (st Store) GoString() string { return st.String() }

// Format makes every fmt verb print String.
func (st Store) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, st.String()) }

// LogValue is the number of secrets.
func (st Store) LogValue() slog.Value { return slog.IntValue(len(st.byID)) }
