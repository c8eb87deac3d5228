// Package api is holdfast's HTTP/JSON API: the request and response types,
// the routes of the three servers, and the Go client the CLI and tests use.
//
// The servers:
//
//   - the control API (NewControlMux over its parts, ControlBackends, or
//     NewControlHandler over one Backend that implements them all) on the
//     local unix socket, for the operator's CLI and scripts; routes under
//     /v1/ (docs/openapi.yaml describes every route of all three);
//   - the node API (NewNodeHandler) on the holdfast-api/1 protocol, for other
//     nodes over mutual TLS; routes under /internal/v1/. The handler reads the
//     caller's identity from its certificate and refuses manager-only routes
//     to workers (403);
//   - the join API (NewJoinHandler) on holdfast-join/1, for nodes that have a
//     token but no certificate yet.
//
// HealthHandler serves GET /v1/health on the control API and on a node's
// metrics listener: 200 when ready, 503 with the reason otherwise.
//
// Errors are data. Every error body is {"error": "…", "code": "…"}: a
// message for people and a stable Code (CodeNotFound, CodeLocked, …) for
// programs. The codes table in errors.go is the only place an error's
// HTTP status is chosen; docs/API.md lists every code, its status and what
// a client should do. The Client returns *Error with the code read back,
// and each sentinel (ErrLocked, ErrRemoved, ErrNotLeader, ErrNoLeader,
// ErrNotManager, ErrUninitialized, ErrNeedsUpgrade) matches errors.Is for
// any error of its code, also after a round trip. An answer without a code
// (a server from before codes) is read from its status, in legacyCode
// only. Routes wraps each server's mux: a wrong method on a route that
// exists is 405 with an Allow header, an unknown path 404.
//
// Duties of the caller: implement the control API's parts (LifecycleBackend,
// ClusterBackend, SecretsBackend, KeysBackend, SnapshotBackend,
// HealthBackend, CABackend: each may be a type of its own), NodeBackend and
// JoinBackend, and return
// sentinels or *Error values made by Errorf or Wrap with a Code for
// failures a client should tell apart; anything else is CodeInternal
// (500). Decide with codes (errors.Is, CodeOf, Code.Temporary), never with
// HTTP statuses. Never put secret material into an error message.
package api
