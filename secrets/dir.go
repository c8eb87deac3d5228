//go:build unix

package secrets

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/holdfast/holdfast/internal/atomicfile"
	"github.com/holdfast/holdfast/internal/dirsync"
	"github.com/holdfast/holdfast/internal/failpoint"
)

// FileMode is the mode of delivered secret files.
const FileMode fs.FileMode = 0o400

// DirMode is the mode Sync creates a missing secrets directory with.
const DirMode fs.FileMode = 0o700

// tmpPrefix starts the names of Sync's temporary files. It begins with a
// dot, so it can never be a secret name.
const tmpPrefix = ".holdfast-tmp-"

// Dir is a node's secrets directory (--secrets-dir): one file per secret
// granted to the node, named after the secret, mode 0400. It should be on a
// tmpfs (see OnTmpfs): the files hold the data in plaintext.
//
// Sync must not run concurrently with itself on the same directory. The
// directory should belong to the daemon's user alone.
type Dir struct {
	Path string
}

// Sync makes the directory hold exactly the granted secrets:
//
//   - It creates Path (and missing parents) with mode 0700 if missing.
//   - It writes each granted secret to Path/<name>, mode 0400, atomically: a
//     temporary file in the same directory, fsync, rename, fsync of the
//     directory. A file that already has the secret's content (same SHA-256)
//     and mode 0400 is left as it is.
//   - It removes the regular files whose names are valid secret names but not
//     granted ones, and temporary files left by an interrupted Sync.
//
// It never touches anything else: files with names that are not valid secret
// names, directories, symlinks (never followed, never replaced: a granted
// secret whose name is taken by one is an error) and other special files.
//
// written and removed are the names written (new or changed) and removed,
// sorted. Sync carries on past a secret it cannot handle (an invalid name,
// two secrets with one name, an I/O error) and returns all such errors
// joined; no error quotes secret data.
func (d Dir) Sync(granted []*Secret) (written, removed []string, err error) {
	if d.Path == "" {
		return nil, nil, errors.New("secrets dir: no path")
	}
	if err := os.MkdirAll(d.Path, DirMode); err != nil {
		return nil, nil, fmt.Errorf("secrets dir: %w", err)
	}
	if fi, err := os.Stat(d.Path); err != nil {
		return nil, nil, fmt.Errorf("secrets dir: %w", err)
	} else if !fi.IsDir() {
		return nil, nil, fmt.Errorf("secrets dir: %s is not a directory", d.Path)
	}

	var errs []error
	keep := map[string]bool{}
	var todo []*Secret
	for i, s := range granted {
		switch {
		case s == nil:
			errs = append(errs, fmt.Errorf("secrets dir: granted secret %d is nil", i))
			continue
		case ValidateName(s.Name) != nil:
			errs = append(errs, fmt.Errorf("secrets dir: not writing %w", ValidateName(s.Name)))
			continue
		case keep[s.Name]:
			errs = append(errs, errorf(ErrNameTaken, "secrets dir: two granted secrets are named %q", s.Name))
			continue
		}
		// Kept even if its data is bad below: a granted secret's old file
		// is never removed.
		keep[s.Name] = true
		if err := ValidateData(s.Data); err != nil {
			errs = append(errs, fmt.Errorf("secrets dir: secret %q: %w", s.Name, err))
			continue
		}
		todo = append(todo, s)
	}
	slices.SortFunc(todo, func(a, b *Secret) int { return strings.Compare(a.Name, b.Name) })

	changed := false
	for _, s := range todo {
		w, err := d.write(s.Name, s.Data)
		if err != nil {
			errs = append(errs, err)
		}
		if w {
			written = append(written, s.Name)
			changed = true
		}
	}

	entries, err := os.ReadDir(d.Path)
	if err != nil {
		errs = append(errs, fmt.Errorf("secrets dir: %w", err))
	}
	for _, e := range entries { // sorted by name
		name := e.Name()
		stale := strings.HasPrefix(name, tmpPrefix)
		if keep[name] || !e.Type().IsRegular() || (!stale && ValidateName(name) != nil) {
			continue
		}
		p := filepath.Join(d.Path, name)
		// Look again just before removing: only a regular file goes.
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("secrets dir: %w", err))
			continue
		}
		changed = true
		if !stale {
			removed = append(removed, name)
		}
	}

	if changed {
		if err := dirsync.Sync(d.Path); err != nil {
			errs = append(errs, fmt.Errorf("secrets dir: %w", err))
		}
	}
	return written, removed, errors.Join(errs...)
}

// write puts data into Path/name unless the file there already has it. It
// reports whether it wrote.
func (d Dir) write(name string, data []byte) (bool, error) {
	p := filepath.Join(d.Path, name)
	same, err := hasContent(p, data)
	if err != nil {
		return false, fmt.Errorf("secrets dir: secret %q: %w", name, err)
	}
	if same {
		return false, nil
	}
	// The directory is synced once, by Sync, after every file.
	opts := atomicfile.Options{
		TempPattern:  tmpPrefix + "*",
		BeforeRename: func() { failpoint.Hit(failpoint.SecretSynced) },
		NoDirSync:    true,
	}
	err = atomicfile.Write(p, FileMode, opts, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("secrets dir: secret %q: %w", name, err)
	}
	failpoint.Hit(failpoint.SecretRenamed)
	return true, nil
}

// hasContent reports whether p is a regular file of mode FileMode holding
// exactly data. It is false when p does not exist, and an error when p
// exists but is not a regular file (a symlink, a directory…), which Sync
// must leave alone.
func hasContent(p string, data []byte) (bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s exists and is not a regular file (%s); leaving it alone", p, fi.Mode().Type())
	}
	if fi.Mode().Perm() != FileMode || fi.Size() != int64(len(data)) {
		return false, nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return false, err
	} else if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s is not a regular file; leaving it alone", p)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, MaxSize+1)); err != nil {
		return false, err
	}
	want := sha256.Sum256(data)
	return subtle.ConstantTimeCompare(h.Sum(nil), want[:]) == 1, nil
}
