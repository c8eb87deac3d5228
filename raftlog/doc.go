// Package raftlog is holdfast's encrypted raft storage: a raft.LogStore
// and raft.StableStore (Store) over a raft-boltdb file and a write-ahead
// file that makes each batch durable with one fdatasync, a raft.SnapshotStore
// (SnapshotStore), the DEK keyring and key file, and DEK rotation
// (Rotator). The byte formats are specified in FORMAT.md.
//
// Each log entry's Data and Extensions are sealed with the current DEK
// (internal/seal, XChaCha20-Poly1305) before they reach bolt; the index,
// term, type and AppendedAt stay in raft-boltdb's clear encoding and are
// bound, with the cluster ID, format version and key ID, into the
// associated data. A record moved to another index, altered, or copied
// from another cluster is reported as a *RecordError wrapping ErrTampered
// and never served. Snapshots are sealed with the seal STREAM format and
// fully authenticated before Open returns them. StableStore values (term,
// vote) are sealed too, bound to their name, the cluster and the node.
//
// The disk as a whole cannot be rolled back unnoticed: a sealed log state
// in raft.db, rewritten in the same bolt transaction as every change to
// its entries, lists the runs of entries it holds and the last one's
// term; in the WAL, every batch ends in a sealed trailer (bound to the
// generation, the batch's number and its offset) that the next two
// batches' writes rewrite, Followed then Confirmed, within each one's
// single contiguous write and fdatasync. A WAL cut by two batches or
// more ends in a Confirmed trailer, which no crash leaves. Open and
// OpenReadOnly refuse a log that holds less or other than that (entries
// deleted from the tail, the middle or the head, the last rewound, a
// removed term or vote record, a WAL cut by more than its last batch or
// missing a batch in the middle) with a *StateError wrapping
// ErrRolledBack and ErrTampered. What this cannot catch (the last batch
// of a crashed node's WAL; files put back from an earlier copy of the
// same disk) is in FORMAT.md, section 1.2, and docs/DESIGN-NOTES.md ("The
// WAL's one-batch window"). A store the previous release wrote is
// upgraded in place on its first read-write open; WALs of format
// versions 1 and 2 are read, and version 3 is written from the next
// generation on.
//
// Without autolock the key file holds the DEK unwrapped (mode 0600):
// encryption at rest then protects copies of the raft files, not a stolen
// disk. Compaction rewrites the bolt file so no free page keeps old
// ciphertext (and zeroes the WAL's records), but the filesystem may still
// hold the old file's blocks.
//
// # Caller's duties
//
//  1. Create the key file once (SaveKeyFile with a NewKey) and at startup
//     build the Keyring from LoadKeyFile. Give the same Keyring to Open and
//     NewSnapshotStore, with the same ClusterID; give Open and OpenReadOnly
//     the node's ID as NodeID, the same every time.
//  2. Put raft.NewLogCache in front of the Store; it does not cache.
//  3. If the key file lists previous keys at startup, a rotation was
//     interrupted: call Rotator.Resume (raft may already be running).
//  4. Poll Store.NeedsRotation (for instance after each snapshot) and call
//     Rotator.Rotate with a fresh seal.NewKey when it reports true; also
//     rotate whenever the KEK changes. Run one rotation at a time.
//  5. On a *RecordError, *SnapshotError or *StateError wrapping
//     ErrTampered (ErrRolledBack: the log was rolled back or damaged),
//     stop: the node must be restored from its peers (wipe and rejoin) or
//     a backup. StoreLogs refuses an entry too large for the WAL with
//     ErrTooLarge. A Compact that returns an error after renaming the
//     compacted file has closed the store (ErrClosed from then on).
//  6. Close the Store after raft has shut down.
package raftlog
