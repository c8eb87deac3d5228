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
// vote) are not secret and are stored as raft-boltdb stores them.
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
//     NewSnapshotStore, with the same ClusterID.
//  2. Put raft.NewLogCache in front of the Store; it does not cache.
//  3. If the key file lists previous keys at startup, a rotation was
//     interrupted: call Rotator.Resume (raft may already be running).
//  4. Poll Store.NeedsRotation (for instance after each snapshot) and call
//     Rotator.Rotate with a fresh seal.NewKey when it reports true; also
//     rotate whenever the KEK changes. Run one rotation at a time.
//  5. On a *RecordError or *SnapshotError wrapping ErrTampered, stop: the
//     node must be restored from its peers (wipe and rejoin) or a backup.
//  6. Close the Store after raft has shut down.
package raftlog
