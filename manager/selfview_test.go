package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/spread"
	"github.com/holdfast/holdfast/secrets"
)

// bigState is a state of managers and workers, every one gossiping.
func bigState(managers, workers int) *fsm.State {
	s := &fsm.State{Nodes: map[string]*fsm.Node{}}
	add := func(id string, role ca.Role) {
		s.Nodes[id] = &fsm.Node{ID: id, Role: role, Addr: id + ":4242", GossipAddr: id + ":7946"}
	}
	for i := range managers {
		add(fmt.Sprintf("mgr-%02d", i), roleManager)
	}
	for i := range workers {
		add(fmt.Sprintf("wrk-%04d", i), roleWorker)
	}
	return s
}

// TestSelfViewGossipPeersAreABoundedStableSample: with 1,000 nodes in the
// state, a worker's view names at most gossipSeeds gossip peers, every
// manager among them, never itself; the same state gives the same sample;
// a node joining changes at most one entry of another's sample; and the
// samples together cover the cluster (not all the same few nodes).
func TestSelfViewGossipPeersAreABoundedStableSample(t *testing.T) {
	s := bigState(3, 997)
	sh := buildShared(s, 10)
	managers := []string{"mgr-00", "mgr-01", "mgr-02"}
	named := map[string]bool{}
	for i := 0; i < 997; i += 7 {
		id := fmt.Sprintf("wrk-%04d", i)
		v := selfViewOf(s, sh, id, false)
		peers := v.GossipPeers
		if len(peers) > gossipSeeds || len(peers) == 0 {
			t.Fatalf("%s: %d gossip peers; want 1..%d", id, len(peers), gossipSeeds)
		}
		var ids []string
		for _, p := range peers {
			ids = append(ids, p.NodeID)
			named[p.NodeID] = true
			if p.NodeID == id {
				t.Fatalf("%s: its own view names itself as a gossip peer", id)
			}
			if p.Addr != s.Nodes[p.NodeID].GossipAddr {
				t.Fatalf("%s: peer %s at %s; want its gossip address %s", id, p.NodeID, p.Addr, s.Nodes[p.NodeID].GossipAddr)
			}
		}
		if !slices.Equal(ids[:3], managers) {
			t.Fatalf("%s: peers %v; want the managers %v first", id, ids, managers)
		}
		again := selfViewOf(s, buildShared(s, 10), id, false).GossipPeers
		if !slices.Equal(again, peers) {
			t.Fatalf("%s: sample not stable: %v then %v", id, peers, again)
		}
	}
	if len(named) < 100 {
		t.Fatalf("the samples of 143 workers name only %d nodes; want them spread over the cluster", len(named))
	}

	// One more worker joins: each sample changes in at most one entry.
	before := map[string][]api.PeerAddr{}
	for i := range 997 {
		id := fmt.Sprintf("wrk-%04d", i)
		before[id] = sh.gossipPeers(id)
	}
	s.Nodes["wrk-new"] = &fsm.Node{ID: "wrk-new", Role: roleWorker, GossipAddr: "wrk-new:7946"}
	sh2 := buildShared(s, 11)
	for id, was := range before {
		now := sh2.gossipPeers(id)
		changed := 0
		for _, p := range now {
			if !slices.Contains(was, p) {
				changed++
			}
		}
		if changed > 1 {
			t.Fatalf("%s: a node joining changed %d entries of its sample (%v → %v); want at most 1", id, changed, was, now)
		}
	}
}

// A manager's own sample names the other managers, and with more managers
// than the bound, each worker gets gossipSeeds of them.
func TestSelfViewGossipPeersWithManyManagers(t *testing.T) {
	s := bigState(12, 50)
	sh := buildShared(s, 1)
	if got := sh.gossipPeers("mgr-00"); len(got) != gossipSeeds || slices.ContainsFunc(got, func(p api.PeerAddr) bool { return p.NodeID == "mgr-00" }) {
		t.Fatalf("mgr-00's sample %v; want %d others", got, gossipSeeds)
	}
	for i := range 50 {
		got := sh.gossipPeers(fmt.Sprintf("wrk-%04d", i))
		if len(got) != gossipSeeds {
			t.Fatalf("got %d peers; want %d", len(got), gossipSeeds)
		}
		for _, p := range got {
			if s.Nodes[p.NodeID].Role != roleManager {
				t.Fatalf("sample %v names a worker while managers are left out", got)
			}
		}
	}
}

// TestSelfSharedViewBuiltOncePerIndex: many workers' polls answered at one
// index build the shared part of their views once; a new index, once more.
func TestSelfSharedViewBuiltOncePerIndex(t *testing.T) {
	c := newCluster(t, 1, 0)
	m := c.managers[0]
	node := m.node.apis.node
	poll := func(n int) map[uint64]bool {
		indexes := map[uint64]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := node.Self(ctxT(t), api.Peer{NodeID: fmt.Sprintf("w-%d", i), Role: roleWorker}, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if v.CA == nil || v.ClusterID == "" {
					t.Errorf("view at %d lacks the shared parts: CA %t, cluster %q", v.Index, v.CA != nil, v.ClusterID)
				}
				mu.Lock()
				indexes[v.Index] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		return indexes
	}
	builds := func() int {
		node.views.mu.Lock()
		defer node.views.mu.Unlock()
		return node.views.builds
	}
	b0 := builds()
	seen := poll(50)
	if got := builds() - b0; got != len(seen) {
		t.Fatalf("50 polls answered at %d indexes built the shared view %d times; want once per index", len(seen), got)
	}
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "s", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	b1 := builds()
	seen = poll(50)
	if got := builds() - b1; got != len(seen) {
		t.Fatalf("after a write, 50 polls at %d indexes built the shared view %d times; want once per index", len(seen), got)
	}
}

// TestSelfNeverAnswersOlderThanTheNodeSaw: a follower that has not applied
// the index a worker saw elsewhere answers an error (the worker asks
// another manager), not an older view; the leader, whose state is the
// cluster's, answers.
func TestSelfNeverAnswersOlderThanTheNodeSaw(t *testing.T) {
	c := newCluster(t, 3, 0)
	var leader, follower *testNode
	for _, m := range c.managers {
		if m.node.current().rn().isLeader() {
			leader = m
		} else {
			follower = m
		}
	}
	if leader == nil || follower == nil {
		t.Fatal("want a leader and a follower")
	}
	peer := api.Peer{NodeID: "w-ahead", Role: roleWorker}
	seen := follower.node.current().rn().fsm.Index() + 1000
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	v, err := follower.node.apis.node.Self(ctx, peer, seen)
	if err == nil {
		t.Fatalf("a follower at index %d answered a node that saw %d with a view at %d; want an error", follower.node.current().rn().fsm.Index(), seen, v.Index)
	}
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeUnavailable {
		t.Fatalf("got %v; want code %s", err, api.CodeUnavailable)
	}
	ctx2, cancel2 := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel2()
	if v, err := leader.node.apis.node.Self(ctx2, peer, seen); err != nil || v.Index == 0 {
		t.Fatalf("the leader answered %v, %v; want its view", v, err)
	}
}

// fakeManagers serves GET /internal/v1/self for followers under test: a
// first poll gets a view listing every fake manager, later polls wait
// until the poller leaves; a manager in down answers 503.
type fakeManagers struct {
	srvs []*httptest.Server
	list []api.PeerAddr
	down map[string]bool
}

func newFakeManagers(t *testing.T, ids []string, down ...string) *fakeManagers {
	fm := &fakeManagers{down: map[string]bool{}}
	for _, d := range down {
		fm.down[d] = true
	}
	for _, id := range ids {
		id := id
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if fm.down[id] {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": string(api.CodeUnavailable), "message": "down"}})
				return
			}
			if r.URL.Query().Get("index") != "0" {
				<-r.Context().Done()
				return
			}
			_ = json.NewEncoder(w).Encode(api.SelfView{Index: 1, ClusterID: "c", Managers: fm.list, Secrets: []api.SecretRef{}})
		}))
		t.Cleanup(srv.Close)
		fm.srvs = append(fm.srvs, srv)
		fm.list = append(fm.list, api.PeerAddr{NodeID: id, Addr: srv.Listener.Addr().String()})
	}
	return fm
}

// firstServed runs a follower for node self against fm until one of the
// fake managers serves it a view, and returns that manager's ID.
func firstServed(t *testing.T, fm *fakeManagers, self string) string {
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	served := make(chan string, 1)
	byAddr := map[string]string{}
	for _, m := range fm.list {
		byAddr[m.Addr] = m.NodeID
	}
	f := &follower{
		managers: func() []api.PeerAddr { return fm.list },
		client: func(addr string) *api.Client {
			if !fm.down[byAddr[addr]] {
				select {
				case served <- byAddr[addr]:
				default:
				}
			}
			return api.NewClient(http.DefaultClient, "http://"+addr)
		},
		caViews:  make(chan *api.CAView, 1),
		secrets:  &workerDelivery{out: secretWriter{dir: secrets.Dir{Path: t.TempDir()}, log: discardLogger()}, fetchTimeout: time.Second},
		remember: func([]api.PeerAddr) {},
		keys:     newKeyBox(),
		ask:      func(ca.RoleTarget) {},
		log:      discardLogger(),
		self:     self,
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case id := <-served:
		cancel()
		<-done
		return id
	case err := <-done:
		t.Fatalf("follower stopped: %v", err)
	case <-ctxT(t).Done():
		t.Fatal("no manager served the follower")
	}
	return ""
}

// TestWorkersSpreadOverManagers: workers long-poll the manager their node
// ID ranks first, so that a fleet spreads over all the managers; those
// whose first choice is down spread over the others.
func TestWorkersSpreadOverManagers(t *testing.T) {
	ids := []string{"m-a", "m-b", "m-c"}
	fm := newFakeManagers(t, ids)
	count := map[string]int{}
	const n = 30
	for i := range n {
		self := fmt.Sprintf("worker-%02d", i)
		got := firstServed(t, fm, self)
		if want := spread.Order(self, ids, func(s string) string { return s })[0]; got != want {
			t.Fatalf("%s polled %s; want its first choice %s", self, got, want)
		}
		count[got]++
	}
	for _, id := range ids {
		if count[id] < n/6 {
			t.Fatalf("polls per manager %v; want each of %v to serve about a third", count, ids)
		}
	}

	// m-a is down: its workers go to their second choices, both others.
	fm = newFakeManagers(t, ids, "m-a")
	moved := map[string]int{}
	for i := range n {
		self := fmt.Sprintf("worker-%02d", i)
		order := spread.Order(self, ids, func(s string) string { return s })
		if order[0] != "m-a" {
			continue
		}
		got := firstServed(t, fm, self)
		if got != order[1] {
			t.Fatalf("%s, first choice down, polled %s; want its second choice %s", self, got, order[1])
		}
		moved[got]++
	}
	if len(moved) != 2 {
		t.Fatalf("the workers of the manager that is down went to %v; want both others", moved)
	}
}
