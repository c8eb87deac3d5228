// Package api is holdfast's HTTP/JSON API: the request and response types,
// the routes of the three servers, and the Go client the CLI and tests use.
//
// The servers:
//
//   - the control API (NewControlMux over its parts, ControlBackends, or
//     NewControlHandler over one Backend that implements them all) on the
//     local unix socket, for the operator's CLI and scripts; routes under
//     /v1/ (the README lists them);
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
// Duties of the caller: implement the control API's parts (LifecycleBackend,
// ClusterBackend, SecretsBackend, KeysBackend, SnapshotBackend,
// HealthBackend, CABackend: each may be a type of its own), NodeBackend and
// JoinBackend, and return
// *Error values (see Errorf) for failures that have an HTTP status; anything
// else is a 500. Never put secret material into an error message.
package api
