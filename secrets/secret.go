package secrets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
)

// Secret is one secret with its data.
//
// Data is the only sensitive field. Printing a Secret with fmt (any verb,
// including %v, %+v, %#v, %s, %x, %d), String, GoString or slog (LogValue)
// never shows Data, only its size. JSON is the exception, on purpose: the
// JSON form of a Secret includes Data (base64), because it is what goes into
// raft log entries and snapshots, which raftlog seals before they touch
// disk. Marshal a Secret to JSON only for those, and use Meta for anything
// shown to people or sent over the API.
//
// One consequence for logging: slog.JSONHandler encodes values that are not
// slog.LogValuers with encoding/json. Log a Secret itself (its LogValue
// applies) or its Meta, never a slice, map or struct that holds Secrets.
type Secret struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Data never changes after creation.
	Data []byte `json:"data"`
	// Digest is "sha256:" and the lowercase hex SHA-256 of Data.
	Digest    string    `json:"digest"`
	Size      int       `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Grants are the IDs of the nodes that receive the secret, sorted and
	// unique.
	Grants []string `json:"grants,omitempty"`
}

// Meta is a secret without its data: what listing and inspecting show.
// Labels and Grants are never nil, so that JSON shows {} and [].
type Meta struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels"`
	Digest    string            `json:"digest"`
	Size      int               `json:"size"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	Grants    []string          `json:"grants"`
}

// New returns a validated secret created (and updated) at now. It copies
// data, labels and grants, so the caller keeps ownership of its arguments.
// Grants are sorted and deduplicated; whether the nodes exist is not checked
// here (see Store.ApplyCreate). The errors wrap ErrInvalidID,
// ErrInvalidName, ErrEmpty, ErrTooLarge, ErrInvalidLabel, ErrUnknownNode
// (malformed node ID) or ErrMalformed (now out of range).
func New(id, name string, data []byte, labels map[string]string, grants []string, now time.Time) (*Secret, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := ValidateData(data); err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	if err := ValidateLabels(labels); err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	g, err := normGrants(grants)
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	if err := validTime(now); err != nil {
		return nil, fmt.Errorf("secret %q: created at: %w", name, err)
	}
	now = normTime(now)
	return &Secret{
		ID:        id,
		Name:      name,
		Labels:    copyLabels(labels),
		Data:      slices.Clone(data),
		Digest:    DigestOf(data),
		Size:      len(data),
		CreatedAt: now,
		UpdatedAt: now,
		Grants:    g,
	}, nil
}

// DigestOf returns "sha256:" and the lowercase hex SHA-256 of data.
//
// Note that an unsalted digest lets whoever sees it confirm a guess of the
// data: it is metadata, but not harmless for low-entropy secrets.
func DigestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Validate checks every field and that they agree: ID, name, data and labels
// by their rules, Digest and Size against Data, Grants sorted, unique and
// well-formed, times writable as RFC 3339.
func (s *Secret) Validate() error {
	if s == nil {
		return errorf(ErrMalformed, "nil secret")
	}
	if err := ValidateID(s.ID); err != nil {
		return err
	}
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if err := ValidateData(s.Data); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	if err := ValidateLabels(s.Labels); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	if s.Size != len(s.Data) {
		return errorf(ErrMalformed, "secret %q: size %d does not match its data (%d bytes)", s.Name, s.Size, len(s.Data))
	}
	if s.Digest != DigestOf(s.Data) {
		return errorf(ErrMalformed, "secret %q: digest does not match its data", s.Name)
	}
	if err := checkGrants(s.Grants); err != nil {
		return fmt.Errorf("secret %q: %w", s.Name, err)
	}
	if err := validTime(s.CreatedAt); err != nil {
		return fmt.Errorf("secret %q: created at: %w", s.Name, err)
	}
	if err := validTime(s.UpdatedAt); err != nil {
		return fmt.Errorf("secret %q: updated at: %w", s.Name, err)
	}
	return nil
}

// Clone returns a deep copy, data included.
func (s *Secret) Clone() *Secret {
	c := *s
	c.Labels = copyLabels(s.Labels)
	c.Data = slices.Clone(s.Data)
	c.Grants = slices.Clone(s.Grants)
	return &c
}

// Meta returns the secret's metadata: a copy that shares nothing with s and
// has no data.
func (s *Secret) Meta() Meta {
	labels := copyLabels(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	grants := slices.Clone(s.Grants)
	if grants == nil {
		grants = []string{}
	}
	return Meta{
		ID:        s.ID,
		Name:      s.Name,
		Labels:    labels,
		Digest:    s.Digest,
		Size:      s.Size,
		CreatedAt: s.CreatedAt,
		UpdatedAt: s.UpdatedAt,
		Grants:    grants,
	}
}

// GrantedTo reports whether nodeID is in the secret's grants.
func (s *Secret) GrantedTo(nodeID string) bool {
	_, ok := slices.BinarySearch(s.Grants, nodeID)
	return ok
}

// The methods below have value receivers so that Secret and *Secret both
// have them: fmt and slog look for them on whatever they are given.

// String describes the secret without its data.
func (s Secret) String() string {
	return fmt.Sprintf("secret %q (id %s, %d bytes)", s.Name, s.ID, s.Size)
}

// GoString is like %#v but with Data replaced by its size.
func (s Secret) GoString() string {
	return fmt.Sprintf("secrets.Secret{ID:%q, Name:%q, Labels:%#v, Data:<redacted %d bytes>, Digest:%q, Size:%d, CreatedAt:%s, UpdatedAt:%s, Grants:%#v}",
		s.ID, s.Name, s.Labels, len(s.Data), s.Digest, s.Size,
		s.CreatedAt.Format(time.RFC3339Nano), s.UpdatedAt.Format(time.RFC3339Nano), s.Grants)
}

// Format makes every fmt verb print String (GoString for %#v), so that no
// verb (%x, %d, %+v…) falls back to printing the fields, Data among them.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// LogValue is the secret's metadata for slog, without data or digest.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", s.ID),
		slog.String("name", s.Name),
		slog.Int("size", s.Size),
	)
}

var (
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ fmt.Formatter  = Secret{}
	_ slog.LogValuer = Secret{}
)
