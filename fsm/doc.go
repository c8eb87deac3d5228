// Package fsm is holdfast's replicated state machine: typed, versioned
// commands, the raft.FSM that applies them, and snapshot/restore.
//
// Duties of the caller:
//
//  1. Build commands with the constructors in commands.go and turn them into
//     log data with Encode; only the raft leader submits them (raft.Apply).
//  2. Put every value that depends on time or randomness (IDs, timestamps,
//     keys) into the command before proposing it. Apply is deterministic: it
//     never reads the clock or crypto/rand, so every replica reaches the same
//     state.
//  3. Read state only through FSM.Read, and never keep or modify the *State it
//     hands out after the callback returns.
//  4. To wait for a change, take FSM.Changed() before reading, then select on
//     it; it is closed at the next applied command.
//
// Apply never panics on bad input. A command that no build wrote (bad
// JSON, a truncated envelope) yields a *Result whose Err wraps
// ErrMalformedCommand, alike on every replica. A command this build does
// not know (a type or version from a newer build, levels.go) stops the
// FSM at that entry: it applies nothing from there on, keeps its index
// before it, refuses to snapshot, and reports it (NeedsUpgrade) until a
// snapshot is restored or a build that knows the command replays the log.
// It never skips an entry, so no replica ever lacks a committed change.
//
// The leader proposes only what every manager can apply: Check refuses
// what no build knows, Downgrade picks an encoding the cluster version
// knows, and BatchAllowed says whether a batch entry may be made.
package fsm
