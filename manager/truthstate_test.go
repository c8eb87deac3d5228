package manager

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// TestRemovedWorkerSaysRemoved: after 'node rm', the worker learns it
// from the node API, wipes its state and says "removed" — on status, on
// /v1/health (503), and to other commands — also after a restart; leave
// then join brings it back.
func TestRemovedWorkerSaysRemoved(t *testing.T) {
	c := newCluster(t, 1, 1)
	m, w := c.managers[0], c.workers[0]
	wid := w.status().NodeID
	if err := m.client.RemoveNode(ctxT(t), wid, false); err != nil {
		t.Fatalf("rm worker: %v", err)
	}
	eventually(t, 15*time.Second, "the removed worker to say removed", func() bool { return w.status().State == api.StateRemoved })
	check := func(when string) {
		t.Helper()
		st := w.status()
		if st.State != api.StateRemoved || st.NodeID != wid || st.Role != roleWorker || st.ClusterID != c.init.ClusterID {
			t.Errorf("%s: status %+v; want worker %s removed from %s", when, st, wid, c.init.ClusterID)
		}
		h, err := w.client.Health(ctxT(t))
		if err != nil || h.Status != api.HealthRemoved || h.HTTPStatus() != http.StatusServiceUnavailable {
			t.Errorf("%s: health %+v, %v; want 503 removed", when, h, err)
		}
		_, err = w.client.Keys(ctxT(t))
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeRemoved || !strings.Contains(err.Error(), "holdfast join --token") {
			t.Errorf("%s: keys ls = %v; want code removed saying how to join again", when, err)
		}
	}
	check("after rm")
	w.stop()
	w.start()
	check("after a restart")
	// 'holdfast leave' then join, as ErrRemoved advises.
	if err := w.client.Leave(ctxT(t), api.LeaveRequest{}); err != nil {
		t.Fatalf("leave a removed node: %v", err)
	}
	if st := w.status(); st.State != api.StateUninitialized {
		t.Fatalf("after leave: state %s; want uninitialized", st.State)
	}
	if _, err := w.client.Join(ctxT(t), api.JoinRequest{Token: c.init.WorkerToken, Addr: c.init.Addr}); err != nil {
		t.Fatalf("join again: %v", err)
	}
	if st := w.status(); st.State != api.StateReady || st.NodeID == wid {
		t.Fatalf("joined again: state %s, node %s; want a ready new node", st.State, st.NodeID)
	}
}

// TestRestartedManagerCatchesUp: a manager restarted while the cluster
// wrote on says catching-up (status with applied and target index,
// health 503, keys ls an error) until it has applied what the leader had
// committed; its applying is held by a test gate to watch it.
func TestRestartedManagerCatchesUp(t *testing.T) {
	c := newCluster(t, 3, 0)
	l := c.leader()
	var lagger *testNode
	for _, m := range c.followers(l) {
		lagger = m
	}
	eventually(t, 15*time.Second, "the cluster's first keys on "+lagger.name, func() bool {
		keys, err := lagger.client.Keys(context.Background())
		return err == nil && len(keys) > 0
	})
	lagger.stop()
	for i := range 5 {
		if _, err := l.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "s" + string(rune('a'+i)), Data: []byte("x")}); err != nil {
			t.Fatalf("create secret: %v", err)
		}
	}
	commit := l.status().Raft.CommitIndex
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	lagger.cfg.applyGate = func() { <-release }
	lagger.start()

	var st *api.Status
	eventually(t, 30*time.Second, "the restarted manager to know its target", func() bool {
		st = lagger.status()
		return st.State == api.StateCatchingUp && st.CatchingUp != nil && st.CatchingUp.TargetIndex > 0
	})
	if cu := st.CatchingUp; cu.TargetIndex < commit || cu.AppliedIndex >= cu.TargetIndex || cu.AppliedIndex != st.Raft.AppliedIndex {
		t.Errorf("catching up %+v (raft %+v); want a target of at least the leader's commit index %d, not applied", cu, st.Raft, commit)
	}
	eventually(t, 15*time.Second, "health to say catching-up", func() bool {
		h, err := lagger.client.Health(context.Background())
		return err == nil && h.Status == api.HealthCatchingUp && h.HTTPStatus() == http.StatusServiceUnavailable
	})
	_, err := lagger.client.Keys(ctxT(t))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeUnavailable || !strings.Contains(err.Error(), "catching up") {
		t.Errorf("keys ls while catching up = %v; want code unavailable saying it catches up", err)
	}
	open()
	eventually(t, 15*time.Second, "the manager to catch up", func() bool { return lagger.status().State == api.StateReady })
	if st := lagger.status(); st.Raft.AppliedIndex < commit || st.CatchingUp != nil {
		t.Errorf("ready at %+v (catching up %+v); want applied at least %d", st.Raft, st.CatchingUp, commit)
	}
	if h, err := lagger.client.Health(ctxT(t)); err != nil || h.Status != api.HealthReady {
		t.Errorf("health after catching up = %+v, %v; want ready", h, err)
	}
	if keys, err := lagger.client.Keys(ctxT(t)); err != nil || len(keys) == 0 {
		t.Errorf("keys ls after catching up = %v, %v; want the keys", keys, err)
	}
}

// TestRestartedManagerWithoutLeaderIsCatchingUp: a manager restarted
// while no leader can be elected has applied nothing and cannot know
// what it lacks: it says catching-up (target 0), health no-leader, and
// keys ls is an error rather than an empty list; once a peer is back it
// catches up and is ready.
func TestRestartedManagerWithoutLeaderIsCatchingUp(t *testing.T) {
	c := newCluster(t, 2, 0)
	m0, m1 := c.managers[0], c.managers[1]
	eventually(t, 15*time.Second, "both ready, with keys", func() bool {
		keys, err := m1.client.Keys(context.Background())
		return m0.status().State == "ready" && m1.status().State == "ready" && err == nil && len(keys) > 0
	})
	m1.stop()
	m0.stop()
	m1.start()
	st := m1.status()
	if st.State != "catching-up" || st.CatchingUp == nil || st.CatchingUp.TargetIndex != 0 {
		t.Errorf("restarted alone: state %q, catching up %+v (raft %+v); want catching-up with no target", st.State, st.CatchingUp, st.Raft)
	}
	if h, err := m1.client.Health(ctxT(t)); err != nil || h.Status != "no-leader" {
		t.Errorf("health restarted alone = %+v, %v; want no-leader", h, err)
	}
	if keys, err := m1.client.Keys(ctxT(t)); err == nil {
		t.Errorf("keys ls restarted alone = %v; want an error", keys)
	}
	m0.start()
	eventually(t, 20*time.Second, "m1 caught up", func() bool { return m1.status().State == "ready" })
	if keys, err := m1.client.Keys(ctxT(t)); err != nil || len(keys) == 0 {
		t.Errorf("keys ls after catching up = %v, %v; want the keys", keys, err)
	}
}
