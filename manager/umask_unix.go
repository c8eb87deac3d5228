//go:build unix

package manager

import (
	"net"
	"sync"
	"syscall"
)

// umaskMu serialises umask changes within the process (tests run several
// nodes in one).
var umaskMu sync.Mutex

// listenUnixPrivate listens on a unix socket created under a 0077 umask.
// The umask is the process's: files other goroutines create meanwhile get
// no more permission than they ask for, only possibly less.
func listenUnixPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
