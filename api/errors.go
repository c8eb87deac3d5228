package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an API failure with its HTTP status. It is what the server sends
// ({"error": "…"}) and what the client returns.
type Error struct {
	Status  int
	Message string
	err     error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause, when the error was made by Wrap.
func (e *Error) Unwrap() error { return e.err }

// Errorf returns an *Error with the given status.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Wrap gives err an HTTP status, keeping it for errors.Is.
func Wrap(status int, err error) *Error {
	return &Error{Status: status, Message: err.Error(), err: err}
}

// Sentinel errors shared by servers and clients.
var (
	// ErrLocked is what every route but status and unlock answers on a locked node.
	ErrLocked = &Error{Status: http.StatusLocked, Message: "this node is locked; run 'holdfast unlock'"}
	// ErrNotManager is what manager-only routes answer on a worker.
	ErrNotManager = &Error{Status: http.StatusServiceUnavailable, Message: "this node is not a manager; run the command on a manager"}
	// ErrRemoved is what the node API answers a node the cluster removed,
	// on every route: it is served nothing, but learns why.
	ErrRemoved = &Error{Status: http.StatusForbidden, Message: "this node was removed from the cluster; run 'holdfast leave' on it, then join it again with a new token"}
	// ErrUninitialized is what cluster routes answer before init or join.
	ErrUninitialized = &Error{Status: http.StatusServiceUnavailable, Message: "this node is not part of a cluster; run 'holdfast init' or 'holdfast join'"}
)

// IsRemoved reports whether err is ErrRemoved, also after it crossed the
// wire.
func IsRemoved(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == ErrRemoved.Status && e.Message == ErrRemoved.Message
}

// StatusOf returns the HTTP status for err: its own if it has one, else 500.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error string `json:"error"`
}

// WriteError writes err as {"error": "…"} with its status.
func WriteError(w http.ResponseWriter, err error) { writeError(w, err) }

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, StatusOf(err), errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
