package powerfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FS is one mounted power-cut filesystem.
type FS struct {
	mountpoint string
	backing    string
	syncDelay  atomic.Int64 // nanoseconds
	off        atomic.Bool  // the power is off: no sync makes anything durable

	mu      sync.Mutex // guards st, open, server; held across every change
	st      state
	open    map[*handle]bool
	server  *fuse.Server
	cuts    int
	mounted bool
}

// ErrClosed is returned by Cut after Close.
var ErrClosed = errors.New("powerfs: closed")

// Mount mounts a power-cut filesystem at mountpoint whose live tree is
// backing/tree (created empty if missing). What is in backing/tree when
// it mounts is durable.
func Mount(mountpoint, backing string) (*FS, error) {
	f := &FS{mountpoint: mountpoint, backing: backing}
	f.st.tree = filepath.Join(backing, "tree")
	f.st.keep = filepath.Join(backing, "keep")
	if err := os.MkdirAll(f.st.tree, 0o700); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.st.reset(); err != nil {
		return nil, fmt.Errorf("powerfs: %w", err)
	}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// mount serves the live tree at the mount point. f.mu is held.
func (f *FS) mount() error {
	var st syscall.Stat_t
	if err := syscall.Stat(f.st.tree, &st); err != nil {
		return err
	}
	root := &fs.LoopbackRoot{Path: f.st.tree, Dev: uint64(st.Dev)}
	root.RootNode = &node{LoopbackNode: fs.LoopbackNode{RootData: root}, fsys: f}
	sec := time.Second
	f.open = map[*handle]bool{}
	server, err := fs.Mount(f.mountpoint, root.RootNode, &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			DirectMount:       true,
			DirectMountStrict: true,
			FsName:            "powerfs",
			Name:              "powerfs",
		},
	})
	if err != nil {
		return fmt.Errorf("powerfs: mount %s: %w", f.mountpoint, err)
	}
	f.server = server
	f.mounted = true
	return nil
}

// unmount stops serving and closes what the kernel did not release.
// f.mu is not held (the kernel may still send requests until the mount is
// gone).
func (f *FS) unmount() error {
	if err := f.server.Unmount(); err != nil {
		return fmt.Errorf("powerfs: unmount %s: %w", f.mountpoint, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for h := range f.open {
		h.close()
	}
	f.open = nil
	f.mounted = false
	return nil
}

// PowerOff is the moment the power goes: from now until the next Cut, no
// fsync or fdatasync makes anything durable (one in progress, waiting for
// its sync delay, fails with EIO instead). Call it before killing the
// processes, so that a sync they had under way does not complete after
// their death; Cut calls it too.
func (f *FS) PowerOff() { f.off.Store(true) }

// Cut is a power cut: it unmounts (which fails if files are still open),
// brings the backing tree back to its durable state, and mounts it again
// at the same mount point, powered on. It returns what was lost.
func (f *FS) Cut() (Loss, error) {
	f.PowerOff()
	f.mu.Lock()
	if !f.mounted {
		f.mu.Unlock()
		return Loss{}, ErrClosed
	}
	f.mu.Unlock()
	if err := f.unmount(); err != nil {
		return Loss{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	loss := f.st.loss()
	if err := f.restore(); err != nil {
		return loss, err
	}
	f.cuts++
	f.off.Store(false)
	return loss, f.mount()
}

// restore replaces the live tree with the durable one. f.mu is held.
func (f *FS) restore() error {
	var st unix.Stat_t
	if err := unix.Stat(f.st.tree, &st); err != nil {
		return err
	}
	cut := filepath.Join(f.backing, "tree.cut")
	old := filepath.Join(f.backing, "tree.old")
	if err := os.RemoveAll(cut); err != nil {
		return err
	}
	if err := f.st.build(cut, st.Mode); err != nil {
		return err
	}
	if err := os.Rename(f.st.tree, old); err != nil {
		return err
	}
	if err := os.Rename(cut, f.st.tree); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if err := f.st.reset(); err != nil {
		return fmt.Errorf("powerfs: %w", err)
	}
	return nil
}

// Cuts is how many times Cut has run.
func (f *FS) Cuts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cuts
}

// SetSyncDelay makes every fsync and fdatasync on the mount wait d
// before it returns (0: no delay).
func (f *FS) SetSyncDelay(d time.Duration) { f.syncDelay.Store(int64(d)) }

// Close unmounts, keeping the live state in backing/tree.
func (f *FS) Close() error {
	f.mu.Lock()
	if !f.mounted {
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()
	return f.unmount()
}

// Mountpoint is where the filesystem is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Check mounts and unmounts a power-cut filesystem in a temporary
// directory; it returns why that fails here (no /dev/fuse, not root, no
// mount permission), or nil.
func Check() error {
	dir, err := os.MkdirTemp("", "powerfs-check")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return err
	}
	f, err := Mount(mnt, filepath.Join(dir, "backing"))
	if err != nil {
		return err
	}
	return f.Close()
}
