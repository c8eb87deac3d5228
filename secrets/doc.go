// Package secrets is holdfast's secret model and rules — names, sizes,
// labels, grants — the replicated Store of secrets, and the delivery of
// granted secrets into a node's secrets directory. It knows nothing of raft
// or the network: the fsm package routes commands to a Store, and the
// manager package wires delivery.
//
// Rules (ValidateName, ValidateData, ValidateLabels):
//
//   - Names: 1 to 64 characters of [a-zA-Z0-9._-], the first a letter or
//     digit. They are file names on granted nodes.
//   - Data: 1 byte to MaxSize (500 KiB) inclusive. Data never changes after
//     creation.
//   - Labels: at most 64. Keys: 1 to 128 characters of [a-zA-Z0-9._/-], the
//     first a letter or digit. Values: at most 1024 bytes of valid UTF-8
//     without control characters; may be empty.
//   - Grants: node IDs of 1 to 128 characters of [a-zA-Z0-9._-], sorted and
//     unique, naming nodes that exist when granted.
//
// Duties of the caller:
//
//  1. Choose every value that depends on the clock or randomness before
//     proposing a command: the secret ID (for example ca.NewID) and the
//     times in CreateCmd, SetLabelsCmd, GrantCmd and RevokeCmd. Store
//     methods are deterministic and never read the clock.
//  2. Validate requests early with ValidateName, ValidateData and
//     ValidateLabels to give users a clear error before anything is
//     proposed; the Store checks again when applying, so every replica
//     refuses the same commands with the same errors.
//  3. Pass a nodeExists that answers from the same replicated state the
//     command is applied to (the FSM's nodes), never from live membership,
//     or replicas diverge. A nil nodeExists refuses every grant.
//  4. Call Store.RevokeNode when a node is removed from the cluster, in the
//     same Apply as its removal.
//  5. Guard the Store with a lock (the FSM's); it is not safe for concurrent
//     use. Secrets returned by Get, GrantedTo and Remove are copies the
//     caller owns.
//  6. Keep secret data out of anything but sealed raft entries and snapshots
//     and the granted nodes' secrets directories: the JSON form of Secret,
//     CreateCmd and Store includes data, deliberately, because raftlog seals
//     it. Show people and API clients Meta (Secret.Meta, Store.List) only.
//     fmt, String, GoString and slog never print data, whatever the verb.
//  7. On a node, give Dir.Sync the full list of secrets granted to it
//     (Store.GrantedTo on a manager, or what the API delivered) each time it
//     changes; Sync is idempotent, so calling it again after an error is
//     the way to retry. Do not run two Syncs on one directory at once.
//     A node fed refs (a worker) decides with Fetches which secrets it
//     keeps and which it must fetch, and with Fingerprint whether a set
//     of refs is the one it last delivered; both are pure functions.
//  8. At start-up, check the secrets directory with OnTmpfs (after creating
//     it) and warn when it is not a tmpfs: delivered secrets are plaintext
//     files.
//
// Errors wrap the sentinels in errors.go; check them with errors.Is. Their
// text names secrets by name or ID and never contains data.
package secrets
