package powerfs

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose changes are recorded in the durable
// state first. Operations that only read are the loopback's own.
type node struct {
	fs.LoopbackNode
	fsys *FS
}

var (
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileFsyncdirer     = (*dirHandle)(nil)
	_ fs.FileReleasedirer   = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
	_ fs.FileReader         = (*handle)(nil)
	_ fs.FileWriter         = (*handle)(nil)
	_ fs.FileWritever       = (*handle)(nil)
	_ fs.FileGetattrer      = (*handle)(nil)
	_ fs.FileFlusher        = (*handle)(nil)
	_ fs.FileReleaser       = (*handle)(nil)
	_ fs.FileLseeker        = (*handle)(nil)
)

// WrapChild makes every node the loopback creates below n one of ours,
// so that changes anywhere in the tree are recorded.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	lb, ok := ops.(*fs.LoopbackNode)
	if !ok {
		return ops
	}
	return &node{LoopbackNode: fs.LoopbackNode{RootData: lb.RootData}, fsys: n.fsys}
}

// path is the node's path in the backing tree.
func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

func (n *node) isDir() bool { return n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFDIR }

// newInode forgets any record of a reused inode number: an inode made
// now has no durable content.
func (n *node) newInode(p string) {
	var st unix.Stat_t
	if unix.Lstat(p, &st) == nil {
		delete(n.fsys.st.files, st.Ino)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			n.fsys.st.dirOf[st.Ino] = n.fsys.st.newDir()
		}
	}
}

// openFlags is how powerfs opens a backing file for the kernel's flags:
// always readable (to save durable bytes before a write), never append
// (the kernel gives the offset) nor truncating (done with saving first).
func openFlags(flags uint32) int {
	fl := int(flags) &^ (syscall.O_APPEND | syscall.O_TRUNC | syscall.O_CREAT | syscall.O_EXCL | fuse.FMODE_EXEC)
	if fl&syscall.O_ACCMODE == syscall.O_WRONLY {
		fl = fl&^syscall.O_ACCMODE | syscall.O_RDWR
	}
	return fl | syscall.O_CLOEXEC
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	f := n.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	p := filepath.Join(n.path(), name)
	var st unix.Stat_t
	existed := unix.Lstat(p, &st) == nil
	if existed && flags&syscall.O_EXCL != 0 {
		return nil, nil, 0, syscall.EEXIST
	}
	if !existed {
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_CLOEXEC, mode)
		if err != nil {
			return nil, nil, 0, errno(err)
		}
		unix.Close(fd)
		if caller, ok := fuse.FromContext(ctx); ok && os.Getuid() == 0 {
			_ = unix.Lchown(p, int(caller.Uid), int(caller.Gid))
		}
		n.newInode(p)
	}
	h, e := f.openHandle(p, flags)
	if e != 0 {
		return nil, nil, 0, e
	}
	ch, e := n.LoopbackNode.Lookup(ctx, name, out)
	if e != 0 {
		h.close()
		return nil, nil, 0, e
	}
	f.open[h] = true
	return ch, h, 0, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f := n.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	h, e := f.openHandle(n.path(), flags)
	if e != 0 {
		return nil, 0, e
	}
	f.open[h] = true
	return h, 0, 0
}

// openHandle opens the backing file at p for the kernel's flags,
// truncating it (with saving) for O_TRUNC. f.mu is held.
func (f *FS) openHandle(p string, flags uint32) (*handle, syscall.Errno) {
	fd, err := unix.Open(p, openFlags(flags)|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, errno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, errno(err)
	}
	h := &handle{fsys: f, fd: fd, ino: st.Ino}
	if flags&syscall.O_TRUNC != 0 && int(flags)&syscall.O_ACCMODE != syscall.O_RDONLY {
		if err := f.st.truncate(st.Ino, fd, 0); err != nil {
			unix.Close(fd)
			return nil, errno(err)
		}
	}
	return h, 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	ds, e := fs.NewLoopbackDirStream(n.path())
	if e != 0 {
		return nil, 0, e
	}
	return &dirHandle{ds: ds, n: n}, 0, 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	ch, e := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if e == 0 {
		n.newInode(filepath.Join(n.path(), name))
	}
	return ch, e
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	ch, e := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if e == 0 {
		n.newInode(filepath.Join(n.path(), name))
	}
	return ch, e
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	ch, e := n.LoopbackNode.Symlink(ctx, target, name, out)
	if e == 0 {
		n.newInode(filepath.Join(n.path(), name))
	}
	return ch, e
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.fsys.mu.Lock()
	defer n.fsys.mu.Unlock()
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	f := n.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	p := filepath.Join(n.path(), name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return errno(err)
	}
	e := n.LoopbackNode.Rmdir(ctx, name)
	if e == 0 {
		delete(f.st.dirOf, st.Ino)
	}
	return e
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	f := n.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	var dst unix.Stat_t
	replaced := unix.Lstat(filepath.Join(np.path(), newName), &dst) == nil &&
		dst.Mode&unix.S_IFMT == unix.S_IFDIR && flags&unix.RENAME_EXCHANGE == 0
	e := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if e == 0 && replaced {
		delete(f.st.dirOf, dst.Ino)
	}
	return e
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f := n.fsys
	h, _ := fh.(*handle)
	if size, ok := in.GetSize(); ok {
		f.mu.Lock()
		var err error
		if h != nil {
			err = f.st.truncate(h.ino, h.fd, int64(size))
		} else {
			err = f.st.truncatePath(n.path(), int64(size))
		}
		f.mu.Unlock()
		if err != nil {
			return errno(err)
		}
	}
	rest := *in
	rest.Valid &^= fuse.FATTR_SIZE
	if h != nil {
		if e := h.setattr(&rest); e != 0 {
			return e
		}
		return h.Getattr(ctx, out)
	}
	return n.LoopbackNode.Setattr(ctx, nil, &rest, out)
}

func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if n.isDir() {
		return n.fsyncDir()
	}
	f := n.fsys
	if d := time.Duration(f.syncDelay.Load()); d > 0 {
		time.Sleep(d) // the slow disk this knob simulates
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off.Load() {
		return syscall.EIO
	}
	if h, ok := fh.(*handle); ok {
		delete(f.st.files, h.ino)
		return 0
	}
	var st unix.Stat_t
	if err := unix.Lstat(n.path(), &st); err != nil {
		return errno(err)
	}
	delete(f.st.files, st.Ino)
	return 0
}

// fsyncDir makes the directory's live entries durable.
func (n *node) fsyncDir() syscall.Errno {
	f := n.fsys
	if d := time.Duration(f.syncDelay.Load()); d > 0 {
		time.Sleep(d)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off.Load() {
		return syscall.EIO
	}
	p := n.path()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return errno(err)
	}
	if err := f.st.snapshot(p, f.st.dirID(st.Ino)); err != nil {
		return errno(err)
	}
	return errno(f.st.gc())
}

func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	h, ok := fh.(*handle)
	if !ok {
		return syscall.EBADF
	}
	f := n.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.st.rec(h.ino, h.fd)
	if err == nil {
		err = r.save(h.fd, int64(off), int64(off+size))
	}
	if err == nil {
		err = unix.Fallocate(h.fd, mode, int64(off), int64(size))
	}
	return errno(err)
}

// CopyFileRange is refused, so the kernel copies with reads and writes
// that powerfs records.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Tmpfile is refused: an O_TMPFILE file linked in later has no path to
// track it by.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// handle is an open backing file. It has no passthrough descriptor: every
// write must come through powerfs to be recorded.
type handle struct {
	fsys *FS
	ino  uint64
	fd   int // -1 once closed; changed only with fsys.mu held
}

func (h *handle) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := unix.Pread(h.fd, buf, off)
	if err != nil {
		return nil, errno(err)
	}
	return fuse.ReadResultData(buf[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.st.rec(h.ino, h.fd)
	if err == nil {
		err = r.save(h.fd, off, off+int64(len(data)))
	}
	if err != nil {
		return 0, errno(err)
	}
	n, err := unix.Pwrite(h.fd, data, off)
	return uint32(max(n, 0)), errno(err)
}

func (h *handle) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	return h.Write(ctx, all, off)
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(h.fd, &st); err != nil {
		return errno(err)
	}
	out.FromStat(&st)
	return 0
}

// setattr applies mode, owner and times (not size) to the open file.
func (h *handle) setattr(in *fuse.SetAttrIn) syscall.Errno {
	if m, ok := in.GetMode(); ok {
		if err := unix.Fchmod(h.fd, m); err != nil {
			return errno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := unix.Fchown(h.fd, u, g); err != nil {
			return errno(err)
		}
	}
	mt, mok := in.GetMTime()
	at, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(at.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mt.UnixNano())
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(h.fd), ts, 0); err != nil {
			return errno(err)
		}
	}
	return 0
}

func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Release(ctx context.Context) syscall.Errno {
	f := h.fsys
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, h)
	h.close()
	return 0
}

// close closes the backing descriptor once. fsys.mu is held.
func (h *handle) close() {
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(h.fd, int64(off), int(whence))
	return uint64(n), errno(err)
}

// dirHandle is an open directory: the loopback's stream, with fsync of
// the directory recorded.
type dirHandle struct {
	ds fs.DirStream
	n  *node
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if r, ok := d.ds.(fs.FileReaddirenter); ok {
		return r.Readdirent(ctx)
	}
	if !d.ds.HasNext() {
		return nil, 0
	}
	de, e := d.ds.Next()
	return &de, e
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.ds.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.ds.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
		return
	}
	d.ds.Close()
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return d.n.fsyncDir() }
