package secrets

import (
	"os"
	"syscall"
)

// tmpfsMagic is TMPFS_MAGIC from linux/magic.h.
const tmpfsMagic = 0x01021994

// OnTmpfs reports whether path (which must exist) is on a tmpfs, where
// delivered secrets never reach a disk. The daemon warns at start-up when
// its secrets directory is not.
func OnTmpfs(path string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return st.Type == tmpfsMagic, nil
}
