package powerfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// blockSize is the granularity in which a file's durable content is
// saved before it is first overwritten.
const blockSize = 4096

// fileRec is what is needed to bring one file (a backing inode) back to
// its durable content: its durable size and the durable bytes of every
// block changed since. A file with no fileRec is unchanged since it was
// last durable.
type fileRec struct {
	size  int64
	saved map[int64][]byte // block number -> durable bytes (cut at size)
}

// save keeps the durable bytes of [lo, hi) that are not kept yet. fd must
// be readable. Bytes below size that are not saved have not changed since
// the durable point, so the file still holds them.
func (r *fileRec) save(fd int, lo, hi int64) error {
	hi = min(hi, r.size)
	if lo < 0 {
		lo = 0
	}
	for b := lo / blockSize; b*blockSize < hi; b++ {
		if _, ok := r.saved[b]; ok {
			continue
		}
		start := b * blockSize
		buf := make([]byte, min(start+blockSize, r.size)-start)
		for got := 0; got < len(buf); {
			n, err := unix.Pread(fd, buf[got:], start+int64(got))
			if err != nil {
				return fmt.Errorf("powerfs: save block %d: %w", b, err)
			}
			if n == 0 {
				// A durable byte beyond the end: a truncation that did
				// not save what it cut. A broken invariant.
				return fmt.Errorf("powerfs: save block %d: file shorter than its durable size %d", b, r.size)
			}
			got += n
		}
		r.saved[b] = buf
	}
	return nil
}

// restore puts the durable content back into the file open as fd.
func (r *fileRec) restore(fd int) error {
	if err := unix.Ftruncate(fd, r.size); err != nil {
		return err
	}
	for b, buf := range r.saved {
		if _, err := unix.Pwrite(fd, buf, b*blockSize); err != nil {
			return err
		}
	}
	return nil
}

// entry is one durable directory entry: a directory (dir, the ID of its
// dirRec) or anything else (ino, kept alive by a hard link in keep/).
type entry struct {
	dir  uint64
	ino  uint64
	mode uint32
}

// dirRec is a directory's durable entries.
type dirRec struct {
	entries map[string]entry
}

// state is the durable state beside the live tree. All of it is guarded
// by FS.mu.
type state struct {
	tree, keep string

	files  map[uint64]*fileRec // by backing inode
	dirs   map[uint64]*dirRec  // by our directory ID
	dirOf  map[uint64]uint64   // live directory inode -> directory ID
	kept   map[uint64]bool     // inodes with a link in keep/
	rootID uint64
	nextID uint64
}

func (s *state) newDir() uint64 {
	s.nextID++
	s.dirs[s.nextID] = &dirRec{entries: map[string]entry{}}
	return s.nextID
}

// reset makes the live tree the durable state: every directory's entries
// as they are, every file's content as it is.
func (s *state) reset() error {
	s.files = map[uint64]*fileRec{}
	s.dirs = map[uint64]*dirRec{}
	s.dirOf = map[uint64]uint64{}
	s.kept = map[uint64]bool{}
	if err := os.RemoveAll(s.keep); err != nil {
		return err
	}
	if err := os.Mkdir(s.keep, 0o700); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.tree, &st); err != nil {
		return err
	}
	s.rootID = s.newDir()
	s.dirOf[st.Ino] = s.rootID
	return s.snapshotTree(s.tree, s.rootID)
}

func (s *state) snapshotTree(dir string, id uint64) error {
	if err := s.snapshot(dir, id); err != nil {
		return err
	}
	for name, e := range s.dirs[id].entries {
		if e.dir != 0 {
			if err := s.snapshotTree(filepath.Join(dir, name), e.dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirID returns the ID of the live directory with inode ino, making one
// (with no durable entries) if it has none.
func (s *state) dirID(ino uint64) uint64 {
	id, ok := s.dirOf[ino]
	if !ok {
		id = s.newDir()
		s.dirOf[ino] = id
	}
	return id
}

// snapshot makes the live entries of dir (directory ID id) its durable
// entries, keeping a hard link to every non-directory it names.
func (s *state) snapshot(dir string, id uint64) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	rec := map[string]entry{}
	for _, de := range ents {
		p := filepath.Join(dir, de.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{mode: st.Mode}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			e.dir = s.dirID(st.Ino)
		} else {
			e.ino = st.Ino
			if !s.kept[st.Ino] {
				if err := unix.Link(p, s.keepPath(st.Ino)); err != nil && !errors.Is(err, unix.EEXIST) {
					return fmt.Errorf("powerfs: keep %s: %w", p, err)
				}
				s.kept[st.Ino] = true
			}
		}
		rec[de.Name()] = e
	}
	s.dirs[id].entries = rec
	return nil
}

func (s *state) keepPath(ino uint64) string {
	return filepath.Join(s.keep, strconv.FormatUint(ino, 10))
}

// gc drops directory records and kept links that neither the durable tree
// nor a live directory can reach any more.
func (s *state) gc() error {
	seenDir := map[uint64]bool{}
	seenIno := map[uint64]bool{}
	var walk func(id uint64)
	walk = func(id uint64) {
		if seenDir[id] {
			return
		}
		seenDir[id] = true
		for _, e := range s.dirs[id].entries {
			if e.dir != 0 {
				walk(e.dir)
			} else {
				seenIno[e.ino] = true
			}
		}
	}
	walk(s.rootID)
	for _, id := range s.dirOf {
		walk(id)
	}
	for id := range s.dirs {
		if !seenDir[id] {
			delete(s.dirs, id)
		}
	}
	for ino := range s.kept {
		if !seenIno[ino] {
			if err := unix.Unlink(s.keepPath(ino)); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
			delete(s.kept, ino)
		}
	}
	return nil
}

// Loss is what a cut threw away.
type Loss struct {
	// Files is how many durable files lost writes (content or size).
	Files int
	// Bytes is how many bytes of those files went back to their durable
	// content (saved blocks restored, plus the change in size).
	Bytes int64
	// Entries is how many directory entries differed from the durable
	// ones (each one added, removed or pointing elsewhere; a whole new
	// directory counts once).
	Entries int
	// Paths names the files rolled back (ending in "*") and the entries
	// undone (a live name that is not durable ends in "+", a durable one
	// that is not live in "-", one that names another file in "+-"),
	// relative to the root.
	Paths []string
}

func (l Loss) String() string {
	s := fmt.Sprintf("%d files rolled back (%d bytes), %d directory entries undone", l.Files, l.Bytes, l.Entries)
	if len(l.Paths) > 0 {
		s += ": " + strings.Join(l.Paths, " ")
	}
	return s
}

// loss counts what a cut will throw away. It reads the live tree.
func (s *state) loss() Loss {
	var l Loss
	for ino, r := range s.files {
		if !s.kept[ino] {
			continue
		}
		var st unix.Stat_t
		if unix.Lstat(s.keepPath(ino), &st) != nil {
			continue
		}
		if len(r.saved) == 0 && st.Size == r.size {
			continue
		}
		l.Files++
		l.Paths = append(l.Paths, s.durablePath(ino)+"*")
		l.Bytes += max(st.Size-r.size, r.size-st.Size)
		for _, b := range r.saved {
			l.Bytes += int64(len(b))
		}
	}
	var walk func(dir string, id uint64)
	walk = func(dir string, id uint64) {
		rec := s.dirs[id].entries
		ents, _ := os.ReadDir(dir)
		live := map[string]bool{}
		for _, de := range ents {
			live[de.Name()] = true
			p := filepath.Join(dir, de.Name())
			var st unix.Stat_t
			if unix.Lstat(p, &st) != nil {
				continue
			}
			rel, _ := filepath.Rel(s.tree, p)
			e, ok := rec[de.Name()]
			switch {
			case !ok:
				l.Entries++
				l.Paths = append(l.Paths, rel+"+")
			case e.dir != 0 && st.Mode&unix.S_IFMT == unix.S_IFDIR && s.dirOf[st.Ino] == e.dir:
				walk(p, e.dir)
			case e.dir != 0 || e.ino != st.Ino:
				l.Entries++
				l.Paths = append(l.Paths, rel+"+-")
			}
		}
		for name := range rec {
			if !live[name] {
				l.Entries++
				rel, _ := filepath.Rel(s.tree, filepath.Join(dir, name))
				l.Paths = append(l.Paths, rel+"-")
			}
		}
	}
	walk(s.tree, s.rootID)
	return l
}

// durablePath is a durable path of the kept inode ino, for messages.
func (s *state) durablePath(ino uint64) string {
	var find func(dir string, id uint64) string
	find = func(dir string, id uint64) string {
		for name, e := range s.dirs[id].entries {
			p := filepath.Join(dir, name)
			if e.dir != 0 {
				if r := find(p, e.dir); r != "" {
					return r
				}
			} else if e.ino == ino {
				return p
			}
		}
		return ""
	}
	if p := find("", s.rootID); p != "" {
		return p
	}
	return fmt.Sprintf("inode %d", ino)
}

// build writes the durable tree into dst, which must not exist: fresh
// directories, and hard links to the kept files, whose content it then
// restores.
func (s *state) build(dst string, rootMode uint32) error {
	if err := os.Mkdir(dst, fs.FileMode(rootMode&0o777)); err != nil {
		return err
	}
	var fill func(dir string, id uint64) error
	fill = func(dir string, id uint64) error {
		for name, e := range s.dirs[id].entries {
			p := filepath.Join(dir, name)
			if e.dir != 0 {
				if err := unix.Mkdir(p, e.mode&0o7777); err != nil {
					return err
				}
				if err := unix.Chmod(p, e.mode&0o7777); err != nil {
					return err
				}
				if err := fill(p, e.dir); err != nil {
					return err
				}
				continue
			}
			if err := unix.Link(s.keepPath(e.ino), p); err != nil {
				return fmt.Errorf("powerfs: restore %s: %w", p, err)
			}
		}
		return nil
	}
	if err := fill(dst, s.rootID); err != nil {
		return err
	}
	for ino, rec := range s.files {
		if !s.kept[ino] {
			continue // not in the durable tree: gone with the old one
		}
		fd, err := unix.Open(s.keepPath(ino), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("powerfs: restore inode %d: %w", ino, err)
		}
		err = rec.restore(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("powerfs: restore inode %d: %w", ino, err)
		}
	}
	return nil
}

// rec returns the record of the file open as fd (inode ino), making one
// with its current size as durable if it has none.
func (s *state) rec(ino uint64, fd int) (*fileRec, error) {
	if r, ok := s.files[ino]; ok {
		return r, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	r := &fileRec{size: st.Size, saved: map[int64][]byte{}}
	s.files[ino] = r
	return r, nil
}

// truncate sets the size of the file open as fd, saving what it cuts.
func (s *state) truncate(ino uint64, fd int, size int64) error {
	r, err := s.rec(ino, fd)
	if err != nil {
		return err
	}
	if err := r.save(fd, size, r.size); err != nil {
		return err
	}
	return unix.Ftruncate(fd, size)
}

// truncatePath truncates the file at path, which need not be open.
func (s *state) truncatePath(path string, size int64) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return s.truncate(st.Ino, fd, size)
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}
