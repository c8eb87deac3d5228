//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Enabled reports whether this build has failpoints (built with -tags
// failpoints).
const Enabled = true

// EnvVar arms a point: "name" or "name:N".
const EnvVar = "HOLDFAST_FAILPOINT"

var armed = struct {
	once  sync.Once
	mu    sync.Mutex
	name  string
	nth   int
	count int
}{}

func arm() {
	v := os.Getenv(EnvVar)
	if v == "" {
		return
	}
	name, n, ok := strings.Cut(v, ":")
	armed.name, armed.nth = name, 1
	if ok {
		if i, err := strconv.Atoi(n); err == nil && i > 0 {
			armed.nth = i
		}
	}
}

// Hit kills the process with SIGKILL if HOLDFAST_FAILPOINT arms name and
// this is the armed hit.
func Hit(name string) {
	armed.once.Do(arm)
	if armed.name != name {
		return
	}
	armed.mu.Lock()
	armed.count++
	fire := armed.count == armed.nth
	armed.mu.Unlock()
	if !fire {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: killing the process\n", name)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not deliverable late; never return
}
