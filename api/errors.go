package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Code is the stable, documented kind of an API error. Every error body
// carries one ({"error": "…", "code": "…"}); clients decide what to do from
// the code, never from the HTTP status. docs/API.md lists them.
type Code string

// The error codes. Their HTTP statuses are in the codes table below, the
// only place a status is chosen for an error.
const (
	// CodeInvalidArgument: the request is malformed or a value in it is
	// wrong. Fix the request.
	CodeInvalidArgument Code = "invalid_argument"
	// CodeUnauthenticated: a credential was not accepted (join token,
	// unlock key, certificate).
	CodeUnauthenticated Code = "unauthenticated"
	// CodePermissionDenied: the caller is known but may not do this.
	CodePermissionDenied Code = "permission_denied"
	// CodeRemoved: the calling (or this) node was removed from the
	// cluster (ErrRemoved).
	CodeRemoved Code = "removed"
	// CodeNotFound: no such node, secret, keyring or route.
	CodeNotFound Code = "not_found"
	// CodeMethodNotAllowed: the route exists, not with this method; the
	// response's Allow header lists the methods it has.
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeAlreadyExists: the name, ID or node is taken, or the node is
	// already part of a cluster.
	CodeAlreadyExists Code = "already_exists"
	// CodeConflict: the cluster's state does not allow this now.
	CodeConflict Code = "conflict"
	// CodeTooLarge: the request or a value in it is over its limit.
	CodeTooLarge Code = "too_large"
	// CodeNotLeader: a request forwarded between nodes reached a node that
	// does not (or not yet) serve as the leader; nothing was done
	// (ErrNotLeader). Retry against the current leader.
	CodeNotLeader Code = "not_leader"
	// CodeLocked: the node is locked (ErrLocked).
	CodeLocked Code = "locked"
	// CodeInternal: a failure inside the node, and any error without a
	// code.
	CodeInternal Code = "internal"
	// CodeBadGateway: another node the request went through failed.
	CodeBadGateway Code = "bad_gateway"
	// CodeUnavailable: the node or cluster cannot do this right now
	// (shutting down, a timeout, leadership lost); retry later.
	CodeUnavailable Code = "unavailable"
	// CodeNoLeader: the cluster has no leader, no quorum (ErrNoLeader).
	CodeNoLeader Code = "no_leader"
	// CodeNotManager: the route needs a manager (ErrNotManager).
	CodeNotManager Code = "not_manager"
	// CodeUninitialized: the node is not part of a cluster yet
	// (ErrUninitialized).
	CodeUninitialized Code = "uninitialized"
	// CodeNeedsUpgrade: this manager stopped at a log entry its build
	// cannot apply (ErrNeedsUpgrade).
	CodeNeedsUpgrade Code = "needs_upgrade"
	// CodeRateLimited: too many attempts (wrong unlock keys); retry after
	// a pause.
	CodeRateLimited Code = "rate_limited"
	// CodeClockSkew: this manager's clock is further off the other
	// managers' than allowed, so it refuses to issue certificates it
	// would date wrongly; ask another manager, or fix its clock.
	CodeClockSkew Code = "clock_skew"
	// CodeTooManyRequests: the caller (a node, or an address) holds
	// more connections or requests on this manager than it allows, the
	// manager holds as many as it takes from all, or the address made
	// too many failed join attempts; retry after the Retry-After header.
	CodeTooManyRequests Code = "too_many_requests"
)

// codeInfo is one row of the codes table.
type codeInfo struct {
	status int
	// temporary: the same request may succeed later without anyone
	// changing it or the cluster's configuration.
	temporary bool
}

// codes is the one table from an error code to its HTTP status. The
// statuses are those holdfast answered before codes existed, so the HTTP
// API is unchanged apart from the added code.
var codes = map[Code]codeInfo{
	CodeInvalidArgument:  {http.StatusBadRequest, false},
	CodeUnauthenticated:  {http.StatusForbidden, false},
	CodePermissionDenied: {http.StatusForbidden, false},
	CodeRemoved:          {http.StatusForbidden, false},
	CodeNotFound:         {http.StatusNotFound, false},
	CodeMethodNotAllowed: {http.StatusMethodNotAllowed, false},
	CodeAlreadyExists:    {http.StatusConflict, false},
	CodeConflict:         {http.StatusConflict, false},
	CodeTooLarge:         {http.StatusRequestEntityTooLarge, false},
	CodeNotLeader:        {http.StatusMisdirectedRequest, true},
	CodeLocked:           {http.StatusLocked, false},
	CodeInternal:         {http.StatusInternalServerError, false},
	CodeBadGateway:       {http.StatusBadGateway, true},
	CodeUnavailable:      {http.StatusServiceUnavailable, true},
	CodeNoLeader:         {http.StatusServiceUnavailable, true},
	CodeNotManager:       {http.StatusServiceUnavailable, false},
	CodeUninitialized:    {http.StatusServiceUnavailable, false},
	CodeNeedsUpgrade:     {http.StatusServiceUnavailable, true},
	CodeRateLimited:      {http.StatusServiceUnavailable, true},
	CodeClockSkew:        {http.StatusServiceUnavailable, false},
	CodeTooManyRequests:  {http.StatusTooManyRequests, true},
}

// Codes returns every error code, for documentation and tests.
func Codes() []Code {
	out := make([]Code, 0, len(codes))
	for c := range codes {
		out = append(out, c)
	}
	return out
}

// Status returns the HTTP status of code c; 500 for a code this build does
// not know.
func (c Code) Status() int {
	if info, ok := codes[c]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}

// Temporary reports whether a request that failed with code c may succeed
// when retried later as it is: the cluster gets a leader, a node finishes
// starting, a throttle passes. Not for locked (someone must unlock) or
// invalid input.
func (c Code) Temporary() bool { return codes[c].temporary }

// Error is an API failure: its code, and the message for people. It is
// what the server sends ({"error": "…", "code": "…"}) and what the client
// returns. errors.Is(err, ErrLocked) (and the other sentinels) holds for
// any *Error with the sentinel's code, also after it crossed the wire.
type Error struct {
	Code Code
	// Status is the HTTP status: the code's, or, on the client, the one
	// the response carried. Only package api sets it.
	Status  int
	Message string
	err     error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause, when the error was made by Wrap.
func (e *Error) Unwrap() error { return e.err }

// Is reports whether target is the sentinel of e's code (ErrLocked for
// CodeLocked, …), so a sentinel is recognised after a round trip.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && e.Code != "" && sentinels[e.Code] == t
}

// Temporary reports whether e's code is temporary (Code.Temporary).
func (e *Error) Temporary() bool { return e.Code.Temporary() }

// Errorf returns an *Error with the given code.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Status: code.Status(), Message: fmt.Sprintf(format, args...)}
}

// Wrap gives err a code, keeping it for errors.Is and errors.As.
func Wrap(code Code, err error) *Error {
	return &Error{Code: code, Status: code.Status(), Message: err.Error(), err: err}
}

// Sentinel errors shared by servers and clients. Each has a code of its
// own, so a client recognises it with errors.Is.
var (
	// ErrLocked is what every route but status and unlock answers on a locked node.
	ErrLocked = Errorf(CodeLocked, "this node is locked; run 'holdfast unlock'")
	// ErrNotManager is what manager-only routes answer on a worker.
	ErrNotManager = Errorf(CodeNotManager, "this node is not a manager; run the command on a manager")
	// ErrRemoved is what the node API answers a node the cluster removed,
	// on every route: it is served nothing, but learns why.
	ErrRemoved = Errorf(CodeRemoved, "this node was removed from the cluster; run 'holdfast leave' on it, then join it again with a new token")
	// ErrUninitialized is what cluster routes answer before init or join.
	ErrUninitialized = Errorf(CodeUninitialized, "this node is not part of a cluster; run 'holdfast init' or 'holdfast join'")
	// ErrNotLeader is what a node that does not lead answers a request
	// forwarded to the leader; it did nothing, and the sender retries.
	ErrNotLeader = Errorf(CodeNotLeader, "this node is not the leader")
	// ErrNoLeader: the cluster has no leader (no quorum) now.
	ErrNoLeader = Errorf(CodeNoLeader, "no leader: the cluster has no quorum right now; check that a majority of managers is running")
	// ErrNeedsUpgrade: this manager stopped at a log entry its build
	// cannot apply; it serves no reads until it runs a newer build.
	ErrNeedsUpgrade = Errorf(CodeNeedsUpgrade, "this manager's build cannot apply the cluster's log; run a newer build on it")
)

// sentinels maps a code to its sentinel error, for Error.Is.
var sentinels = map[Code]*Error{
	CodeLocked:        ErrLocked,
	CodeNotManager:    ErrNotManager,
	CodeRemoved:       ErrRemoved,
	CodeUninitialized: ErrUninitialized,
	CodeNotLeader:     ErrNotLeader,
	CodeNoLeader:      ErrNoLeader,
	CodeNeedsUpgrade:  ErrNeedsUpgrade,
}

// IsRemoved reports whether err is ErrRemoved, also after it crossed the
// wire. It is errors.Is(err, ErrRemoved).
func IsRemoved(err error) bool { return errors.Is(err, ErrRemoved) }

// CodeOf returns err's code: its own if it is an *Error with one, else
// CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return CodeInternal
}

// StatusOf returns the HTTP status for err: its code's, the status it
// arrived with when its code is unknown to this build, else 500.
func StatusOf(err error) int {
	var e *Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError
	}
	if _, ok := codes[e.Code]; !ok && e.Status != 0 {
		return e.Status
	}
	return e.Code.Status()
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error string `json:"error"`
	Code  Code   `json:"code,omitempty"`
}

// WriteError writes err as {"error": "…", "code": "…"} with its status.
func WriteError(w http.ResponseWriter, err error) { writeError(w, err) }

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, StatusOf(err), errorBody{Error: err.Error(), Code: CodeOf(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readError turns an error response (status, body) into the *Error the
// server meant: its code and message, or, for a body that is not an error
// document, the status line.
func readError(status int, statusLine, what string, body []byte) *Error {
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
		eb = errorBody{Error: fmt.Sprintf("%s: %s", what, statusLine)}
	}
	return errorFrom(status, eb.Code, eb.Error)
}

// errorFrom builds the client's *Error from what a response carried. A
// response without a code comes from a server older than codes (or from
// something that is not holdfast): its code is read from the status.
func errorFrom(status int, code Code, msg string) *Error {
	if code == "" {
		code = legacyCode(status, msg)
	}
	return &Error{Code: code, Status: status, Message: msg}
}

// legacyCode is the compatibility reading of an error from a server that
// sends no code: the code its status (and, for the sentinels, their exact
// message) meant before codes existed. It is the only place a client
// reads meaning from a status.
func legacyCode(status int, msg string) Code {
	for _, s := range []*Error{ErrLocked, ErrNotManager, ErrRemoved, ErrUninitialized, ErrNotLeader, ErrNoLeader} {
		if status == s.Status && msg == s.Message {
			return s.Code
		}
	}
	if status == http.StatusServiceUnavailable && strings.HasPrefix(msg, "this manager serves no reads: ") {
		return CodeNeedsUpgrade
	}
	switch status {
	case http.StatusBadRequest:
		return CodeInvalidArgument
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusMisdirectedRequest:
		return CodeNotLeader
	case http.StatusLocked:
		return CodeLocked
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusBadGateway:
		return CodeBadGateway
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	if status >= 400 && status < 500 {
		return CodeInvalidArgument
	}
	return CodeInternal
}
