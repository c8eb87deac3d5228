// Package powerfs is a FUSE filesystem for tests that can lose power.
//
// It passes every operation through to a backing directory (a loopback)
// and keeps, beside it, what a disk would still hold after a power cut:
// for each file, its content as of its last fsync or fdatasync; for each
// directory, its entries as of its last fsync. [FS.Cut] throws away
// everything else — every write not yet made durable by an fsync of its
// file, and every create, unlink, rename, mkdir or link not yet made
// durable by an fsync of its directory — and mounts the durable state
// again at the same place. This is the model of LazyFS, which etcd's
// robustness tests use; it is stricter than ext4 with its journal, which
// usually (but without a promise) persists a new file's entry along with
// its data.
//
// # The durability model, exactly
//
//   - A file's durable content is what it held at its last fsync or
//     fdatasync (both count the same, size included), or at mount if it
//     has not been synced since. Writes, truncations and fallocate calls
//     after that point are undone by Cut, byte for byte.
//   - A directory's durable entries are the names and the objects they
//     named at its last fsync, or at mount. A file that keeps its durable
//     name but was written afterwards comes back with its own durable
//     content; a file created and fsynced whose directory was not is gone;
//     a rename whose directories were not synced is undone; an unlinked
//     file whose directory was not synced comes back.
//   - A new directory's durable entries are none until it is fsynced; its
//     own entry in its parent needs an fsync of the parent.
//   - Not modelled: metadata other than names and content (mode, owner,
//     times, xattrs survive a cut as they are), sync(2)/syncfs(2) (not
//     forwarded by FUSE; nothing is made durable by them), O_SYNC and
//     O_DSYNC opens (their writes are treated as unsynced), torn or
//     reordered writes within a sync interval (all of an interval's
//     writes are lost together, never part of one), and writes through a
//     shared writable mmap (a kernel writeback may come late). Files
//     created with O_TMPFILE are refused (EOPNOTSUPP).
//
// # Caller's duties
//
//  1. Mount with [Mount]: the mount point must be an existing directory,
//     the backing directory is powerfs's own (it keeps the live tree in
//     backing/tree and hard links to durable files in backing/keep, so
//     both are on one filesystem). Only change the tree through the
//     mount: changes made in the backing directory directly are not
//     tracked.
//  2. Call [FS.PowerOff] first (no sync completes after it), then
//     before [FS.Cut] stop every process that has files open on the
//     mount (kill it: a power cut does not wait for anything). Cut
//     unmounts, restores the durable state, and mounts again at the same
//     mount point; it fails with EBUSY if files are still open, and
//     leaves the mount as it was. A process that held the mount point as
//     its working directory must change to it again.
//  3. Start processes that use the mount in the same mount namespace as
//     the process that serves it (`nsenter --net`, not `ip netns exec`,
//     which copies the mount into a new namespace and keeps the old one
//     alive after an unmount).
//  4. [FS.Close] unmounts and keeps the live state (a clean shutdown).
//  5. [FS.SetSyncDelay] makes every fsync and fdatasync wait that long
//     first, as a slow disk would.
//  6. Never touch a memory mapping of a file of the mount from the
//     process that serves it: a page fault cannot be preempted, so the Go
//     garbage collector's stop-the-world waits for a fault that only the
//     stopped server can answer. Map files (bbolt does) in another
//     process, or open the file in the backing tree (a change made there
//     is taken as durable).
//
// [Check] says whether FUSE can be mounted here; tests skip with its
// answer when it cannot.
package powerfs
