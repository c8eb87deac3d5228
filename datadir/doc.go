// Package datadir is a manager's data directory seen from outside a
// running node: node.json (Info), and the tools that work on a data dir
// with no daemon running on it — reading a stopped manager's raft log
// (holdfast rafttool) and restoring a backup into a new data dir
// (holdfast snapshot restore). It needs no manager.Node, and manager
// imports it, never the other way round. The key files belong to package
// keyfiles and the raft files' format to raftlog; datadir uses both.
//
// # Caller's duties
//
//  1. node.json: read it with LoadInfo and write it with SaveInfo only,
//     giving the level of the running build (fsm.CurrentLevel unless a
//     test runs an older level). LoadInfo returns (nil, nil) for a dir
//     with no node, and ErrLevel for one only a newer build can read.
//  2. Offline log: OpenOffline on a stopped manager's dir, with a
//     function that supplies the unlock key (asked only when the key
//     files are wrapped); it refuses a running daemon's dir
//     (ErrNodeRunning). Read with Entries and Snapshots, then Close. It
//     changes nothing on disk.
//  3. Restore: RestoreBackup into a missing or empty dir (else
//     ErrTargetNotEmpty) with the backup's unlock key or passphrase. It
//     authenticates the whole backup before it writes anything, and
//     leaves the target as it found it on any error.
//  4. The first start of a restored dir (the node, at start): if
//     RestorePending(raft dir), make raft's configuration this node alone
//     at its real address (raft.RecoverCluster), then FinishRestore; once
//     raft runs, run FillOwnAddr so the node's record gets its address.
package datadir
