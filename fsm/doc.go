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
// Apply never panics on bad input: an undecodable, unknown or unsupported
// command yields a *Result whose Err wraps ErrUnknownCommand or
// ErrUnsupportedVersion. Every replica applies the same log and reaches the
// same error, so state stays identical.
package fsm
