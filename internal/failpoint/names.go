package failpoint

// The named points. A name says what is durable when the point is hit.
const (
	// Key files (keyfiles): an unlock-key change re-wraps the DEK file and
	// the TLS key in one journalled write ("rekey"); a DEK file write
	// alone ("dek") is one rename; certificate material (root, certificate,
	// key) is one journalled write ("certs").
	KeyfilesRekeyPrepared    = "keyfiles/rekey/prepared"     // journal synced under a temporary name
	KeyfilesRekeyCommitted   = "keyfiles/rekey/committed"    // journal renamed into place: the new KEK wins
	KeyfilesRekeyHalfApplied = "keyfiles/rekey/half-applied" // the DEK file rewritten, the TLS key not yet
	KeyfilesRekeyApplied     = "keyfiles/rekey/applied"      // both rewritten, journal not yet removed
	KeyfilesDEKPrepared      = "keyfiles/dek/prepared"       // new DEK file synced under a temporary name
	KeyfilesDEKApplied       = "keyfiles/dek/applied"        // renamed into place
	KeyfilesCertsPrepared    = "keyfiles/certs/prepared"
	KeyfilesCertsCommitted   = "keyfiles/certs/committed"
	KeyfilesCertsHalfApplied = "keyfiles/certs/half-applied" // root.pem rewritten, node.pem and node.key not yet
	KeyfilesCertsApplied     = "keyfiles/certs/applied"

	// DEK rotation (raftlog.Rotator): between the key file writes.
	DEKRotateLogResealed = "dek-rotate/log-resealed"      // every entry re-sealed, snapshots not yet
	SnapshotResealed     = "dek-rotate/snapshot-resealed" // one snapshot re-sealed and renamed into place
	DEKRotateResealed    = "dek-rotate/resealed"          // every entry and snapshot re-sealed, not compacted
	DEKRotateCompacted   = "dek-rotate/compacted"         // bolt compacted, old DEK still in the key file

	// Snapshots (raftlog.SnapshotStore), taken or installed.
	SnapshotSynced    = "snapshot/synced"    // sealed file synced under a temporary name
	SnapshotPublished = "snapshot/published" // renamed into place and the directory synced

	// Secret delivery (secrets.Dir).
	SecretSynced  = "secret/synced"  // secret file synced under a temporary name
	SecretRenamed = "secret/renamed" // renamed into place, directory not synced
)

// All lists every point, for tests that enumerate them.
var All = []string{
	KeyfilesRekeyPrepared, KeyfilesRekeyCommitted, KeyfilesRekeyHalfApplied, KeyfilesRekeyApplied,
	KeyfilesDEKPrepared, KeyfilesDEKApplied,
	KeyfilesCertsPrepared, KeyfilesCertsCommitted, KeyfilesCertsHalfApplied, KeyfilesCertsApplied,
	DEKRotateLogResealed, SnapshotResealed, DEKRotateResealed, DEKRotateCompacted,
	SnapshotSynced, SnapshotPublished,
	SecretSynced, SecretRenamed,
}
