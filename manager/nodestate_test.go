package manager

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/datadir"
)

// TestDecideStateAndHealth: the state status shows and the one health
// answers, from a node's own facts; removed and catching-up are never
// "ready".
func TestDecideStateAndHealth(t *testing.T) {
	mgr := stateFacts{running: true, manager: true, leaderKnown: true}
	with := func(f stateFacts, change func(*stateFacts)) stateFacts { change(&f); return f }
	for _, tc := range []struct {
		name          string
		f             stateFacts
		state, health string
	}{
		{"uninitialized", stateFacts{}, api.StateUninitialized, api.HealthUninitialized},
		{"locked", stateFacts{locked: true}, api.StateLocked, api.HealthLocked},
		{"removed, state wiped", stateFacts{removed: true}, api.StateRemoved, api.HealthRemoved},
		{"removed before the wipe finished", stateFacts{removed: true, running: true}, api.StateRemoved, api.HealthRemoved},
		{"removed wins over locked", stateFacts{removed: true, locked: true}, api.StateRemoved, api.HealthRemoved},
		{"worker", stateFacts{running: true}, api.StateReady, api.HealthReady},
		{"manager caught up", mgr, api.StateReady, api.HealthReady},
		{"manager catching up", with(mgr, func(f *stateFacts) { f.catchingUp = true }), api.StateCatchingUp, api.HealthCatchingUp},
		{"catching up, no leader", with(mgr, func(f *stateFacts) { f.catchingUp, f.leaderKnown = true, false }), api.StateCatchingUp, api.HealthNoLeader},
		{"caught up, no leader", with(mgr, func(f *stateFacts) { f.leaderKnown = false }), api.StateReady, api.HealthNoLeader},
		{"needs upgrade while catching up", with(mgr, func(f *stateFacts) { f.catchingUp, f.needsUpgrade = true, true }), api.StateNeedsUpgrade, api.HealthNeedsUpgrade},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideState(tc.f); got != tc.state {
				t.Errorf("decideState = %q; want %q", got, tc.state)
			}
			if got := decideHealth(tc.f); got != tc.health {
				t.Errorf("decideHealth = %q; want %q", got, tc.health)
			}
		})
	}
}

// TestCatchingUpDecision: a manager catches up until it knows the
// leader's commit index and has applied it, and then never again.
func TestCatchingUpDecision(t *testing.T) {
	for _, tc := range []struct {
		done            bool
		target, applied uint64
		want            bool
	}{
		{false, 0, 0, true},   // just started: the target is not known
		{false, 0, 500, true}, // a restored snapshot is no proof either
		{false, 10, 9, true},
		{false, 10, 10, false},
		{false, 10, 11, false},
		{true, 10, 3, false}, // done is for good
	} {
		if got := catchingUp(tc.done, tc.target, tc.applied); got != tc.want {
			t.Errorf("catchingUp(%v, %d, %d) = %v; want %v", tc.done, tc.target, tc.applied, got, tc.want)
		}
	}
	var c catchUp
	if catching, target := c.progress(100); !catching || target != 0 {
		t.Errorf("zero catchUp: progress = %v, %d; want true, 0", catching, target)
	}
	c.target.Store(7)
	if catching, target := c.progress(6); !catching || target != 7 {
		t.Errorf("target 7, applied 6: progress = %v, %d; want true, 7", catching, target)
	}
	c.done.Store(true)
	if catching, _ := c.progress(0); catching {
		t.Error("done: still catching up")
	}
}

// TestCatchUpTracker: the tracker retries the read index until a leader
// answers, then marks the catch-up done only once the state has applied
// it.
func TestCatchUpTracker(t *testing.T) {
	idx := &indexState{ch: make(chan struct{})}
	var c catchUp
	calls := 0
	tr := &catchUpTracker{progress: &c, state: idx, logger: discardInfo{},
		readIndex: func(ctx context.Context) (uint64, error) {
			calls++
			if calls < 3 {
				return 0, errNoLeader
			}
			return 42, nil
		}}
	done := make(chan error, 1)
	go func() { done <- tr.Run(context.Background()) }()
	eventually(t, 10*time.Second, "a target after three read-index attempts", func() bool { return c.target.Load() != 0 })
	if c.target.Load() != 42 || c.done.Load() {
		t.Fatalf("target %d, done %v; want 42, not done", c.target.Load(), c.done.Load())
	}
	idx.set(41)
	if catching, _ := c.progress(41); !catching {
		t.Fatal("applied 41 of 42: not catching up")
	}
	idx.set(42)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v; want nil", err)
	}
	if !c.done.Load() {
		t.Fatal("applied the target: not done")
	}
	// Done stays done: a second run returns at once.
	if err := tr.Run(context.Background()); err != nil || calls != 3 {
		t.Fatalf("second Run = %v after %d read-index calls; want nil after 3", err, calls)
	}
}

// indexState is an applied index that a test moves, with a channel
// closed at each change.
type indexState struct {
	mu    sync.Mutex
	index uint64
	ch    chan struct{}
}

func (s *indexState) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

func (s *indexState) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *indexState) set(i uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = i
	close(s.ch)
	s.ch = make(chan struct{})
}

type discardInfo struct{}

func (discardInfo) Info(string, ...any) {}

// TestRemovalStep: at start, a removal record with no node state keeps
// the node removed; with the removed node's own state it finishes the
// wipe; with another node's state (it joined again) it is stale.
func TestRemovalStep(t *testing.T) {
	rec := &datadir.Removed{NodeID: "n1"}
	for _, tc := range []struct {
		info *nodeInfo
		want removalAction
	}{
		{nil, removalKeep},
		{&nodeInfo{NodeID: "n1"}, removalFinishWipe},
		{&nodeInfo{NodeID: "n2"}, removalForget},
	} {
		if got := removalStep(rec, tc.info); got != tc.want {
			t.Errorf("removalStep(n1, %+v) = %v; want %v", tc.info, got, tc.want)
		}
	}
}

// TestHealthAPIRemoved: a removed node's health is 503 "removed", with
// who it was.
func TestHealthAPIRemoved(t *testing.T) {
	rec := &datadir.Removed{NodeID: "w1", ClusterID: "c1", Role: roleWorker}
	h := &healthAPI{current: func() *incarnation { return nil }, locked: func() *lockState { return nil }, removed: func() *datadir.Removed { return rec }}
	got := h.Health(context.Background())
	if want := (api.Health{Status: api.HealthRemoved, NodeID: "w1", Role: roleWorker}); *got != want {
		t.Fatalf("got %+v; want %+v", *got, want)
	}
	if got.HTTPStatus() != 503 {
		t.Fatalf("HTTP status %d; want 503", got.HTTPStatus())
	}
	st, err := (&clusterAPI{current: func() *incarnation { return nil }, locked: func() *lockState { return nil }, removed: func() *datadir.Removed { return rec }}).Status(context.Background())
	if err != nil || st.State != api.StateRemoved || st.NodeID != "w1" || st.Role != roleWorker {
		t.Fatalf("status = %+v, %v; want removed worker w1", st, err)
	}
}
