// Package keyfiles is the one owner of a node's key files: the DEK file
// (<data-dir>/keys, raftlog's key file), the node's TLS private key
// (certs/node.key) and the certificate files beside it (certs/root.pem,
// certs/node.pem). A Store is the only code that reads, writes, wraps or
// re-wraps them, and it holds the autolock KEK, in memory only.
//
// Every change is atomic. One file is written to a temporary file, synced,
// renamed into place and its directory synced (mode 0600; 0644 for the
// certificates). A change of several files (a KEK change re-wraps the DEK
// file and the TLS key; a new certificate comes with its key and roots)
// goes through a journal, keys.journal: the new bytes of every file,
// checksummed, written the same way; its rename is the commit point. The
// files are then written one by one and the journal removed. A crash
// after the rename leaves a journal that the next start applies (roll
// forward). A crash before it leaves the old files, whole, and perhaps a
// whole journal under its temporary name: on a locked node it is kept as
// pending, and Unlock tries the key on the files (the current KEK) and on
// the pending journal (the pending KEK), committing the journal if the key
// opens it; any other outcome deletes it (roll back). So after a crash at
// any point of an unlock-key rotation the new key opens the node, and
// before the commit (failpoint keyfiles/rekey/prepared) the old key too.
// Formats are in FORMAT.md.
//
// A flipped or missing byte in a key file is refused with an error that
// names the file (ErrDamaged): envelopes authenticate, the unwrapped DEK
// file and the journal carry a SHA-256 checksum, and the TLS key must be
// the one the certificate certifies. A key that opens neither wrapped
// file is autolock.ErrInvalidKey; a file that names the key but does not
// authenticate under it is damage, not a wrong key.
//
// Why a package of its own and not autolock: the owner needs raftlog's key
// file (a mechanism package above the domain packages) and ca's parsers,
// and autolock is a domain package that knows nothing of either. autolock
// keeps the key, the KEK and the envelope; keyfiles uses them.
//
// # Caller's duties
//
//  1. Make one Store per data directory (New) and use only it for these
//     files; never read or write them, or their directory entries,
//     elsewhere. A tool outside the node that only needs to know whether
//     the files are wrapped, and under which KEK (the bench harness
//     watching a running daemon, a test), calls WrappedKEKID: it reads
//     the two files and changes nothing.
//  2. At start call Wrapped (or Recover): it finishes a write a crash
//     interrupted, and reports whether the node starts locked. An error
//     (a damaged journal) must stop the start.
//  3. On a locked node call Unlock with the KEK of the key the operator
//     gave; on autolock.ErrInvalidKey stay locked. Call SetKEK only when
//     files are about to be written anew (init, join, restore, a demotion
//     to worker), never to "unlock".
//  4. Change the KEK only with Rekey, giving the DEKs in use; then rotate
//     the DEK (raftlog.Rotator with Save set to SaveDEKs), so a DEK once
//     stored under the old KEK decrypts nothing afterwards.
//  5. Serialise a Rekey with DEK rotation (the DEKs passed must be the
//     ones in use until it returns): the Store serialises its own calls,
//     not its callers' reads of other state.
package keyfiles
