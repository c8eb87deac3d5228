package manager

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// TestCAConvertedOnALaggingManagerIsNotDone: a node reporting that it
// moved to a CA rotation's new root, to a manager that has not applied the
// rotation yet, is not told "nothing to record" (which it would take as
// done, and never report again, so the rotation would wait for it for
// ever): the manager answers only from a state that has caught up with
// the leader, here an error since its applying is held.
func TestCAConvertedOnALaggingManagerIsNotDone(t *testing.T) {
	c := newCluster(t, 3, 1)
	l := c.leader()
	lagger := c.followers(l)[0]
	var held atomic.Bool
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	lagger.stop()
	lagger.cfg.applyGate = func() {
		if held.Load() {
			<-release
		}
	}
	lagger.start()
	eventually(t, 30*time.Second, lagger.name+" ready again", func() bool { return lagger.status().State == api.StateReady })
	held.Store(true)
	if _, err := l.client.RotateCA(ctxT(t), api.CARotateRequest{}); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	wid := c.workers[0].status().NodeID
	if err := lagger.node.apis.node.CAConverted(ctx, api.Peer{NodeID: wid, Role: roleWorker}, nil); err == nil {
		t.Fatal("a manager that has not applied the rotation answered a node's report with success (nothing to record)")
	}
}
