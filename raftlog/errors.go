package raftlog

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Check them with errors.Is.
var (
	// ErrTampered means a stored record or snapshot failed authentication
	// or does not belong where it was found. It is never served.
	ErrTampered = errors.New("record tampered with or corrupt")
	// ErrUnknownKey means a record names a DEK that is not in the keyring.
	ErrUnknownKey = errors.New("record sealed with a key not in the keyring")
	// ErrKeyFile means a key file could not be parsed or is invalid.
	ErrKeyFile = errors.New("bad key file")
	// ErrClosed means the store was closed, or failed to reopen after compaction.
	ErrClosed = errors.New("store is closed")
	// ErrSnapshotNotFound means no snapshot has the requested ID.
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrTooLarge means a log entry is too large for the write-ahead file.
	ErrTooLarge = errors.New("log entry too large")
)

// restoreAdvice tells the operator what to do about a damaged record.
const restoreAdvice = "restore this node from its peers (stop it, wipe its data dir, and join again) or restore it from a backup"

// RecordError reports a raft log entry that cannot be served. It wraps
// ErrTampered or ErrUnknownKey (and the underlying cause).
type RecordError struct {
	Path  string // the bolt file holding the entry
	Index uint64 // the raft index that was requested
	Err   error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("raft log %s: entry %d: %v; %s", e.Path, e.Index, e.Err, restoreAdvice)
}

func (e *RecordError) Unwrap() error { return e.Err }

// SnapshotError reports a snapshot that cannot be served. It wraps
// ErrTampered, ErrUnknownKey or an I/O error.
type SnapshotError struct {
	Path string // the snapshot file
	ID   string // the snapshot ID
	Err  error
}

func (e *SnapshotError) Error() string {
	return fmt.Sprintf("raft snapshot %s (%s): %v; %s", e.ID, e.Path, e.Err, restoreAdvice)
}

func (e *SnapshotError) Unwrap() error { return e.Err }
