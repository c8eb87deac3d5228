// Package dirsync makes a directory's entries durable: after a file is
// created, renamed or removed in a directory, only an fsync of the
// directory itself makes that change survive a power cut. Every package
// that writes files atomically (temporary file, fsync, rename) calls Sync
// on the directory last.
package dirsync

import (
	"fmt"
	"os"
)

// Sync fsyncs the directory dir. The error names the directory.
func Sync(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
