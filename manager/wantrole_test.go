package manager

import (
	"sync"
	"testing"

	"github.com/holdfast/holdfast/ca"
)

func TestWantedRole(t *testing.T) {
	var w wantedRole
	if r, removed := w.Load(); r != "" || removed {
		t.Fatalf("zero value Load = %q, %v; want nothing", r, removed)
	}
	w.Store(ca.RoleWorker)
	if r, removed := w.Load(); r != ca.RoleWorker || removed {
		t.Fatalf("after Store(worker): %q, %v", r, removed)
	}
	w.StoreRemoved()
	if r, removed := w.Load(); r != "" || !removed {
		t.Fatalf("after StoreRemoved: %q, %v; want removed", r, removed)
	}
	w.Store(ca.RoleManager)
	if r, removed := w.Load(); r != ca.RoleManager || removed {
		t.Fatalf("after Store(manager): %q, %v", r, removed)
	}
	// Safe for concurrent use (run with -race).
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if i%2 == 0 {
				w.Store(ca.RoleWorker)
			} else {
				w.StoreRemoved()
			}
			w.Load()
		})
	}
	wg.Wait()
}
