// Package autolock keeps a manager's keys locked under a key the operator
// holds: unlock keys (Key), the key-encryption key (KEK) derived from one,
// envelopes that wrap the data-encryption key (DEK) file and the node's TLS
// private key under the KEK (Wrap, Unwrap), m-of-n shares of an unlock key
// (Split, Combine, ShareSet), and a limiter for wrong keys (Backoff). All
// sealing goes through internal/seal; the byte formats are in FORMAT.md.
//
// An unlock key is 32 random bytes, shown as "HFKEY-1-" and the lowercase
// base32 of the key and a 4-byte checksum, so that a typo (ErrMistyped) is
// told apart from a wrong key (ErrInvalidKey, found only when an envelope
// fails to open). The KEK is HKDF-SHA256 of the key. An envelope binds its
// purpose, the node ID and the KEK's ID into the associated data, so a
// wrapped DEK cannot be passed off as a TLS key, nor one node's file as
// another's.
//
// Without autolock nothing is wrapped: the DEK file and the TLS key are
// stored in the clear with mode 0600, and encryption at rest then protects
// copies of the raft files, not a stolen disk.
//
// # Caller's duties
//
//  1. Never write an unlock key, a share or a KEK to disk or to a log. Show
//     a key or share only by calling its String method explicitly, and only
//     to the operator; every other way of printing them (fmt verbs,
//     GoString, slog) is redacted. Keep the KEK (Key.KEK) in memory only.
//  2. Wrap the DEK key file with PurposeDEK and the TLS private key with
//     PurposeNodeKey, under this node's own ID, and write the envelope
//     atomically with mode 0600. Unwrap with the same purpose and node ID.
//     (In holdfast, keyfiles.Store does all of this and is the only caller
//     that touches those files.)
//  3. A node whose files are wrapped (IsWrapped) starts locked. Before each
//     unlock attempt call Backoff.Wait; on a parse error (ErrMistyped,
//     ErrMalformedKey, ErrMalformedShare, ErrShareMismatch) or on
//     ErrInvalidKey from Unwrap call Backoff.Fail and stay locked; on success
//     call Backoff.Succeed. Report ErrInvalidKey as "invalid unlock key".
//     ErrNotWrapped means the file was stored without autolock;
//     ErrMalformedEnvelope means it is damaged.
//  4. Use KEKID to tell an envelope wrapped under another (older) unlock
//     key apart from garbage: a manager that was down during a rotation
//     unlocks with the key it last knew, then re-wraps under the current
//     one. The ID is not authenticated; only Unwrap is.
//  5. When the KEK changes (autolock on or off, or a new unlock key),
//     re-wrap both files under the new KEK in one atomic step (one KEK must
//     open both after a crash at any point) and then rotate the DEK, so a
//     DEK once stored under an old KEK, or unwrapped, decrypts nothing
//     afterwards. Converge decides whether the KEK changes: a pure function
//     of the cluster's unlock key and a constant-time test of the KEK the
//     files are wrapped under. Converge on the cluster's current key, read
//     linearizably, never on a key replayed from the log.
//  6. For m-of-n unlock, Split the key and show each share to its holder;
//     gather shares with a ShareSet (Add reports progress) and unlock with
//     its Key once complete. Reset the set when that key fails to unlock.
//     Fewer than threshold shares reveal nothing of the key but its 4-byte
//     fingerprint.
//
// Key, Share and ShareSet's key compare in constant time; the GF(2^8)
// arithmetic of the shares uses no tables indexed by secret bytes.
package autolock
