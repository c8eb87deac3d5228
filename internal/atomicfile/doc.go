// Package atomicfile is the one place holdfast replaces a file so that a
// crash or power cut leaves either the old file or the new one, never a
// torn or empty one.
//
// Write creates a temporary file in the destination's directory (so the
// rename stays on one file system), sets its mode with chmod (so the
// umask does not matter), lets the caller write it, fsyncs and closes it,
// renames it over the destination and, last, fsyncs the directory
// (internal/dirsync) so that the rename itself is durable. On any error
// before the rename the temporary file is removed; nothing else is
// touched. The file belongs to the user the process runs as: nothing is
// chowned.
//
// The caller must:
//
//  1. name a destination whose directory exists;
//  2. give the exact mode the file must have (0600 for key files, 0400
//     for delivered secrets);
//  3. where it cleans up after a crash, recognise the temporary names:
//     TempPrefix(path) unless it chose Options.TempPattern;
//  4. with Options.NoDirSync, fsync the directory itself before it
//     relies on the rename (e.g. once after several files).
package atomicfile
