// Package manager wires a holdfast node together: its data directory, its
// TLS identity, the one listening port (raft, node API and join, chosen by
// ALPN), raft with the replicated state machine, the control socket, and the
// loops that keep a node's role in step with the cluster.
//
// Duties of the caller:
//
//  1. Build a Config (start from DefaultConfig), then New.
//  2. Call Run(ctx). It serves the control socket at once; a node with state
//     in its data directory resumes, one without waits for Init or Join
//     (which arrive through the control API). Run returns when ctx ends,
//     after a graceful shutdown: a leader hands leadership over first.
//  3. Use the control API (package api) over the control socket to drive
//     it. Node serves only its lifecycle routes (api.LifecycleBackend:
//     init, join, leave, unlock); the other parts of the control API, the
//     node API and the join API are served by adapter types (below).
//  4. Optionally set Config.MetricsAddr: Run then also serves GET /metrics
//     (Prometheus text) and GET /v1/health over plain HTTP there, and
//     MetricsAddr tells the bound address. Logs go to Config.Logger, raft's
//     bridged in.
//
// Offline tools that need no running node live in package datadir:
// datadir.RestoreBackup builds a data dir from a backup (which the daemon
// makes with SaveSnapshot), and datadir.OpenOffline reads a stopped
// manager's raft log for inspection. The node reads node.json through
// datadir, and finishes a pending restore at start with its functions
// (RestorePending, FinishRestore, FillOwnAddr).
//
// Levels: the leader asks every manager its build's level and proposes
// only what the lowest (the cluster version) can apply (levels.go,
// propose.go); a manager stopped at an entry its build cannot apply is
// needs-upgrade and serves no reads. Config.Level runs a build as an
// older level, for tests.
//
// Components. Node is the composition root: New builds, once, the
// components every incarnation shares, each with its dependencies in its
// fields, and Run starts and stops the rest:
//
//   - writePath (apply.go), the write path, behind the proposer interface:
//     apply a command on the leader (batchProposer, propose.go) or forward
//     it (forwarder, forward.go; both are a batcher, batcher.go), run an
//     operation on the leader (onLeader, with the forwarding decision in
//     toLeader), and read a linearizable state (linearize, readState).
//     API adapters and loops write only through it.
//   - access (access.go): who may speak raft and the node API now, asked
//     by the transport at every handshake and raft RPC and by the node API
//     for every request; it caches allowed peers until the access
//     generation moves, and its watch closes connections the state no
//     longer allows.
//   - the API adapters (adapters.go): clusterAPI, secretsAPI, caAPI,
//     keysAPI, backupAPI and healthAPI serve the control API's parts
//     (api.NewControlMux), nodeAPI serves api.NodeBackend and joinAPI
//     api.JoinBackend.
//   - dataDir (datadir.go), a value: the paths in the data directory and
//     node.json at the build's level; Node holds one and hands it on.
//   - sealedLog (sealed.go): opens and checks the sealed raft log when
//     raft starts, finishing an interrupted DEK rotation, and rotates the
//     DEK on demand.
//   - recovery (recover.go): init --force-new-cluster, under the
//     lifecycle lock.
//
// docs/DESIGN-NOTES.md, "Components of a node", has the whole table.
//
// Lifecycle of a node: uninitialized → ready (manager or worker). A manager
// runs raft; a worker does not, and follows the cluster through a manager's
// node API.
//
// Loops: every background loop of a node is started from one table,
// loopTable in loops.go (name, on which nodes, leader-only, constructor).
// Each is a component — a struct with explicit dependencies (narrow
// interfaces such as stateView, or function fields; never the Node) and
// Run(ctx) — except two rows still run as functions of other parts
// (access, the own-address fill). The constructors
// (newX next to each component, buildX in loops.go) are the only place
// the Node is taken apart into dependencies. A loop reads state, asks a
// pure decision in a domain package (overlaykeys.Keyrings.Plan,
// ca.RenewAt, ca.NextNodeStep, ca.NextLeaderStep, ca.NextRoleStep,
// autolock.Converge, secrets.Fetches), acts, logs and meters. A role
// change stops every loop of the incarnation and starts the table again
// for the new role; the table's wholeRun rows (the role supervisor, the
// retrier of a manager whose certificate expired) live as long as Run.
// docs/DESIGN-NOTES.md, "Components of a node", lists them.
package manager
