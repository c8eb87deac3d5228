package secrets

import (
	"errors"
	"fmt"
)

// Sentinel errors. Functions return them wrapped with detail (a name, an ID,
// a limit); check with errors.Is. No error from this package ever contains a
// secret's data.
var (
	// ErrInvalidName means a secret name breaks the name rule (see
	// ValidateName).
	ErrInvalidName = errors.New("invalid secret name")
	// ErrInvalidID means a secret ID breaks the ID rule (see ValidateID).
	ErrInvalidID = errors.New("invalid secret ID")
	// ErrEmpty means a secret has no data.
	ErrEmpty = errors.New("secret data is empty")
	// ErrTooLarge means a secret's data is larger than MaxSize.
	ErrTooLarge = errors.New("secret data is too large")
	// ErrInvalidLabel means a label key or value, or the number of labels,
	// breaks the label rules (see ValidateLabels).
	ErrInvalidLabel = errors.New("invalid secret label")
	// ErrNameTaken means another secret already has the name.
	ErrNameTaken = errors.New("secret name is already in use")
	// ErrIDTaken means another secret already has the ID. IDs are random,
	// so this is a bug in whoever made the ID, or a corrupt snapshot.
	ErrIDTaken = errors.New("secret ID is already in use")
	// ErrNotFound means no secret has the given ID or name.
	ErrNotFound = errors.New("secret not found")
	// ErrUnknownNode means a grant names a node that is not in the cluster
	// (as the caller's nodeExists says), or a malformed node ID.
	ErrUnknownNode = errors.New("unknown node")
	// ErrMalformed means a secret's fields disagree with each other or are
	// out of range: digest or size not matching the data, grants not sorted
	// and unique, a time that cannot be written as RFC 3339.
	ErrMalformed = errors.New("malformed secret")
	// ErrBadSnapshot means Store.UnmarshalJSON could not read its input or
	// found it inconsistent (for example two secrets with one name). The
	// error also wraps the specific sentinel when there is one.
	ErrBadSnapshot = errors.New("bad secrets snapshot")
)

// errorf returns an error whose text is the formatted message (which
// replaces the sentinel's) and which unwraps to sentinel.
func errorf(sentinel error, format string, args ...any) error {
	return &wrapped{msg: fmt.Sprintf(format, args...), err: sentinel}
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }
