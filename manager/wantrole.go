package manager

import (
	"sync/atomic"

	"github.com/holdfast/holdfast/ca"
)

// wantedRole is this node's own view of what the cluster makes it: a
// role, or removed. Its zero value knows nothing yet. It is safe for
// concurrent use.
type wantedRole struct{ p atomic.Pointer[roleWant] }

type roleWant struct {
	role    ca.Role
	removed bool
}

// Store records the role the cluster gives this node.
func (w *wantedRole) Store(r ca.Role) { w.p.Store(&roleWant{role: r}) }

// StoreRemoved records that the cluster removed this node.
func (w *wantedRole) StoreRemoved() { w.p.Store(&roleWant{removed: true}) }

// Load returns the last role stored, or removed; ("", false) before
// anything was.
func (w *wantedRole) Load() (role ca.Role, removed bool) {
	if v := w.p.Load(); v != nil {
		return v.role, v.removed
	}
	return "", false
}
