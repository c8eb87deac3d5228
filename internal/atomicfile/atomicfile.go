package atomicfile

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/holdfast/holdfast/internal/dirsync"
)

// Options adjusts Write. The zero value is the common case.
type Options struct {
	// TempPattern is the os.CreateTemp pattern of the temporary file in
	// the destination's directory; empty means TempPrefix(path)+"*".
	TempPattern string
	// BeforeRename, if set, runs once the temporary file is fsynced and
	// closed, just before the rename (a crash point for tests).
	BeforeRename func()
	// NoDirSync leaves the directory fsync to the caller.
	NoDirSync bool
}

// TempPrefix is how the temporary files of writes to path begin, by
// default: a dot, path's base name and ".tmp-".
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// WriteFile replaces path with data, with mode, and syncs the directory.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return Write(path, mode, Options{}, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what write writes, with mode. An error from
// write, or from any step before the rename, leaves path as it was and
// no temporary file behind. Errors are the os package's, naming the
// file, or dirsync's, naming the directory.
func Write(path string, mode fs.FileMode, opts Options, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	pattern := opts.TempPattern
	if pattern == "" {
		pattern = TempPrefix(path) + "*"
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	closed, renamed := false, false
	defer func() {
		if err != nil && !renamed {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := write(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	closed = true
	if err := f.Close(); err != nil {
		return err
	}
	if opts.BeforeRename != nil {
		opts.BeforeRename()
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	if opts.NoDirSync {
		return nil
	}
	return dirsync.Sync(dir)
}
