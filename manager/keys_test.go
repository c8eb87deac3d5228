package manager

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/overlaykeys"
)

// keyClock is a clock for the key-rotation loops of a whole test cluster:
// real time plus an offset the test moves forward, one rotation interval
// at a time.
type keyClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *keyClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *keyClock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// use puts every running node of c on the clock.
func (k *keyClock) use(c *testCluster) {
	for _, tn := range c.all() {
		if tn.cancel != nil {
			tn.node.keyClock.Store(k.now)
		}
	}
}

func (c *testCluster) all() []*testNode { return append(slices.Clone(c.managers), c.workers...) }

func (c *testCluster) running() []*testNode {
	var out []*testNode
	for _, tn := range c.all() {
		if tn.cancel != nil {
			out = append(out, tn)
		}
	}
	return out
}

// leaderRings reads the keyrings from the leader's replicated state.
func (c *testCluster) leaderRings() overlaykeys.Keyrings {
	var out overlaykeys.Keyrings
	c.leader().node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) { out = s.Keys.Clone() })
	return out
}

// gossipHolds reports whether tn's memberlist has exactly ring's keys
// installed, with ring's primary.
func gossipHolds(tn *testNode, ring *overlaykeys.Ring) bool {
	inc := tn.node.current()
	if inc == nil || ring == nil {
		return false
	}
	g := inc.gossip.Load()
	if g == nil {
		return false
	}
	keys, primary, _ := ring.MemberlistKeys()
	installed, used := g.Keys()
	if len(installed) != len(keys) || !bytes.Equal(used, primary) {
		return false
	}
	for _, k := range keys {
		if !slices.ContainsFunc(installed, func(i []byte) bool { return bytes.Equal(i, k) }) {
			return false
		}
	}
	return true
}

// ipsecHolds reports whether tn serves ring as its ipsec keyring.
func ipsecHolds(tn *testNode, ring *overlaykeys.Ring) bool {
	inc := tn.node.current()
	if inc == nil {
		return false
	}
	v, _, _ := inc.keys.get()
	return v != nil && v.rings.Ring(overlaykeys.IPsec).Equal(ring)
}

// gossipWhole reports whether every running node's memberlist sees every
// other running node alive.
func (c *testCluster) gossipWhole() bool {
	run := c.running()
	for _, tn := range run {
		inc := tn.node.current()
		if inc == nil || inc.gossip.Load() == nil {
			return false
		}
		for _, o := range run {
			if alive, _ := inc.gossipReach(o.node.current().info.NodeID); !alive {
				return false
			}
		}
	}
	return true
}

func decryptFailures(c *testCluster) map[string]int64 {
	out := map[string]int64{}
	for _, tn := range c.running() {
		if g := tn.node.current().gossip.Load(); g != nil && g.DecryptFailures() > 0 {
			out[tn.name] = g.DecryptFailures()
		}
	}
	return out
}

// rotateOnce moves the cluster's key clock one interval forward and waits
// until the leader has rotated both rings once more; it returns the new
// rings and when the rotation was asked for.
func rotateOnce(t *testing.T, c *testCluster, clk *keyClock, interval time.Duration) (overlaykeys.Keyrings, time.Time) {
	t.Helper()
	before := c.leaderRings()
	clk.advance(interval)
	asked := time.Now()
	var after overlaykeys.Keyrings
	eventually(t, 15*time.Second, "a rotation of both rings", func() bool {
		l := c.leader()
		kickKeys(l.node)
		after = c.leaderRings()
		for _, s := range overlaykeys.Subsystems {
			if after.Ring(s).Lamport() <= before.Ring(s).Lamport() {
				return false
			}
		}
		return true
	})
	return after, asked
}

func waitKeysEverywhere(t *testing.T, c *testCluster, rings overlaykeys.Keyrings) {
	t.Helper()
	eventually(t, 15*time.Second, "every node holding the new keyrings", func() bool {
		for _, tn := range c.running() {
			if !gossipHolds(tn, rings.Ring(overlaykeys.Gossip)) || !ipsecHolds(tn, rings.Ring(overlaykeys.IPsec)) {
				return false
			}
		}
		return true
	})
}

func TestDataPlaneKeysRotateWithoutSplittingGossip(t *testing.T) {
	c := newCluster(t, 3, 2)
	clk := &keyClock{}
	clk.use(c)
	rings := c.leaderRings()
	eventually(t, 20*time.Second, "both keyrings bootstrapped and gossip whole", func() bool {
		rings = c.leaderRings()
		return rings.Ring(overlaykeys.Gossip) != nil && rings.Ring(overlaykeys.IPsec) != nil && c.gossipWhole()
	})
	waitKeysEverywhere(t, c, rings)
	start := rings.Ring(overlaykeys.Gossip).Lamport()
	counted := func(s overlaykeys.Subsystem) float64 {
		return testutil.ToFloat64(keyRotations.WithLabelValues(string(s)))
	}
	countedBefore := map[overlaykeys.Subsystem]float64{}
	for _, s := range overlaykeys.Subsystems {
		countedBefore[s] = counted(s)
	}

	const rotations = 6
	var reach []time.Duration
	for i := range rotations {
		var asked time.Time
		rings, asked = rotateOnce(t, c, clk, 12*time.Hour)
		waitKeysEverywhere(t, c, rings)
		reach = append(reach, time.Since(asked))
		if !c.gossipWhole() {
			t.Fatalf("rotation %d: gossip membership is not whole", i+1)
		}
		if f := decryptFailures(c); len(f) > 0 {
			t.Fatalf("rotation %d: gossip messages failed to decrypt: %v", i+1, f)
		}
	}
	// One rotation per interval: never two, never none.
	for _, s := range overlaykeys.Subsystems {
		ring := rings.Ring(s)
		if got, want := ring.Lamport(), start+rotations; got != want {
			t.Fatalf("%s ring at Lamport %d after %d intervals from %d", s, got, rotations, start)
		}
		if len(ring.Keys) != overlaykeys.MaxKeys {
			t.Fatalf("%s ring holds %d keys", s, len(ring.Keys))
		}
		if got := counted(s) - countedBefore[s]; got != rotations {
			t.Fatalf("holdfast_key_rotations_total{subsystem=%q} went up by %v; want %d", s, got, rotations)
		}
	}
	// Gossip carries on with the keys it now has: membership stays whole
	// for a few more probe rounds and nothing fails to decrypt.
	for _, tn := range c.running() {
		g := tn.node.current().gossip.Load()
		if g.Members() != 5 {
			t.Fatalf("%s sees %d gossip members, want 5", tn.name, g.Members())
		}
	}
	if f := decryptFailures(c); len(f) > 0 {
		t.Fatalf("gossip messages failed to decrypt: %v", f)
	}
	// Data-plane keys live in the sealed log and in memory: no byte of any
	// key the cluster ever held is in any file of any data dir.
	var cs []canary
	for _, s := range overlaykeys.Subsystems {
		for _, k := range rings.Ring(s).Keys {
			cs = append(cs, canary{fmt.Sprintf("%s key %d", s, k.Lamport), k.Material})
		}
	}
	var dirs []string
	for _, tn := range c.all() {
		dirs = append(dirs, tn.dir)
	}
	for _, hit := range scanFiles(t, dirs, needlesOf(cs)) {
		t.Errorf("the %s (%s) is in %s at offset %d", hit.canary, hit.enc, hit.file, hit.off)
	}
	sort.Slice(reach, func(i, j int) bool { return reach[i] < reach[j] })
	t.Logf("a rotation reached all 5 nodes (memberlist keyring and ipsec view) in: median %v, max %v", reach[len(reach)/2], reach[len(reach)-1])
}

func TestKeyRotationAcrossLeaderChanges(t *testing.T) {
	c := newCluster(t, 3, 0)
	clk := &keyClock{}
	clk.use(c)
	var rings overlaykeys.Keyrings
	eventually(t, 20*time.Second, "keyrings bootstrapped", func() bool {
		rings = c.leaderRings()
		return rings.Ring(overlaykeys.Gossip) != nil && rings.Ring(overlaykeys.IPsec) != nil
	})
	start := rings.Ring(overlaykeys.IPsec).Lamport()
	const rounds = 3
	for i := range rounds {
		// The rotation falls due and the leader crashes at once: before,
		// during or after its rotation commits. The next leader must
		// rotate exactly when the old one did not.
		old := c.leader()
		clk.advance(12 * time.Hour)
		kickKeys(old.node)
		old.halt()
		l := c.leader()
		eventually(t, 15*time.Second, "the new leader's rotation", func() bool {
			kickKeys(l.node)
			r := c.leaderRings()
			return r.Ring(overlaykeys.IPsec).Lamport() > start+uint64(i) && r.Ring(overlaykeys.Gossip).Lamport() > start+uint64(i)
		})
		old.start()
		clk.use(c)
		eventually(t, 15*time.Second, old.name+" back in raft", func() bool {
			return old.status().Raft.AppliedIndex >= l.status().Raft.CommitIndex
		})
	}
	// Give a double rotation every chance to show itself.
	l := c.leader()
	kickKeys(l.node)
	if _, err := l.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "barrier", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	rings = c.leaderRings()
	for _, s := range overlaykeys.Subsystems {
		if got, want := rings.Ring(s).Lamport(), start+rounds; got != want {
			t.Fatalf("%s ring at Lamport %d after %d due rotations from %d: a rotation was skipped or doubled", s, got, rounds, start)
		}
	}
}

func TestNodeDownThroughRotationsRejoinsGossip(t *testing.T) {
	c := newCluster(t, 3, 1)
	clk := &keyClock{}
	clk.use(c)
	var rings overlaykeys.Keyrings
	eventually(t, 20*time.Second, "keys and whole gossip", func() bool {
		rings = c.leaderRings()
		return rings.Ring(overlaykeys.Gossip) != nil && c.gossipWhole()
	})
	l := c.leader()
	follower := c.followers(l)[0]
	worker := c.workers[0]
	follower.stop()
	worker.stop()
	for range 4 {
		rings, _ = rotateOnce(t, c, clk, 12*time.Hour)
	}
	// The keys they last knew are all gone from the cluster's rings.
	waitKeysEverywhere(t, c, rings)
	follower.start()
	worker.start()
	clk.use(c)
	waitKeysEverywhere(t, c, rings)
	eventually(t, 30*time.Second, "gossip whole again", c.gossipWhole)
	for _, tn := range []*testNode{follower, worker} {
		if n := tn.node.current().gossip.Load().Members(); n != 4 {
			t.Fatalf("%s sees %d members, want 4", tn.name, n)
		}
	}
	// node ls shows every node reachable, from gossip.
	nodes, err := l.client.Nodes(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Status != api.NodeReady || n.GossipAddr == "" {
			t.Fatalf("node %s: status %s, gossip addr %q", n.ID, n.Status, n.GossipAddr)
		}
	}
}

func TestGossipRefusesAWrongKey(t *testing.T) {
	c := newCluster(t, 1, 1)
	eventually(t, 20*time.Second, "gossip whole", c.gossipWhole)
	m0 := c.managers[0]
	g := m0.node.current().gossip.Load()

	// An outsider that knows the cluster's label and the address, but not
	// the key.
	key := make([]byte, 32)
	rand.Read(key)
	kr, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := memberlist.DefaultLocalConfig()
	cfg.Name = "intruder"
	cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
	cfg.Keyring = kr
	cfg.Label = m0.node.current().info.ClusterID
	cfg.TCPTimeout = 2 * time.Second
	cfg.Logger = log.New(io.Discard, "", 0)
	rogue, err := memberlist.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Shutdown()
	if n, err := rogue.Join([]string{g.Addr()}); err == nil || n != 0 {
		t.Fatalf("a node with a wrong gossip key joined (%d, %v)", n, err)
	}
	eventually(t, 10*time.Second, "the refusal counted", func() bool { return g.DecryptFailures() > 0 })
	for _, tn := range c.running() {
		for _, name := range tn.node.current().gossip.Load().MemberNames() {
			if name == "intruder" {
				t.Fatalf("%s lists the intruder as a member", tn.name)
			}
		}
	}
	if rogue.NumMembers() != 1 {
		t.Fatalf("the intruder sees %d members", rogue.NumMembers())
	}
}

func TestKeysListAndIPsecStream(t *testing.T) {
	c := newCluster(t, 3, 1)
	clk := &keyClock{}
	clk.use(c)
	var rings overlaykeys.Keyrings
	eventually(t, 20*time.Second, "keys everywhere", func() bool {
		rings = c.leaderRings()
		if rings.Ring(overlaykeys.IPsec) == nil || rings.Ring(overlaykeys.Gossip) == nil {
			return false
		}
		for _, tn := range c.running() {
			if !ipsecHolds(tn, rings.Ring(overlaykeys.IPsec)) {
				return false
			}
		}
		return true
	})

	// The stream on a follower and on a worker.
	l := c.leader()
	watchers := []*testNode{c.followers(l)[0], c.workers[0]}
	type item struct {
		at time.Time
		k  *api.Keyring
	}
	streams := make([]chan item, len(watchers))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, tn := range watchers {
		ch := make(chan item, 16)
		streams[i] = ch
		go func() {
			_ = tn.client.WatchKeyring(ctx, "ipsec", func(k *api.Keyring) error {
				ch <- item{time.Now(), k}
				return nil
			})
		}()
	}
	next := func(i int) item {
		select {
		case it := <-streams[i]:
			return it
		case <-time.After(20 * time.Second):
			t.Fatalf("no keyring from %s's stream", watchers[i].name)
			return item{}
		}
	}
	for i := range watchers {
		if it := next(i); it.k.Keys[len(it.k.Keys)-1].Lamport != rings.Ring(overlaykeys.IPsec).Lamport() {
			t.Fatalf("first keyring from %s is not the current one", watchers[i].name)
		}
	}
	for round := range 3 {
		var asked time.Time
		rings, asked = rotateOnce(t, c, clk, 12*time.Hour)
		want := rings.Ring(overlaykeys.IPsec)
		for i := range watchers {
			it := next(i)
			got := keyringsFromAPI([]api.Keyring{*it.k}).Ring(overlaykeys.IPsec)
			if !got.Equal(want) {
				t.Fatalf("round %d: %s streamed a keyring that is not the new one", round, watchers[i].name)
			}
			for j, k := range it.k.Keys {
				if !bytes.Equal(k.Key, want.Keys[j].Material) {
					t.Fatalf("round %d: %s streamed wrong key material", round, watchers[i].name)
				}
			}
			primary, _ := want.Primary()
			for _, k := range it.k.Keys {
				if k.Primary != (k.KeyID == primary.ID) {
					t.Fatalf("round %d: wrong primary flag on %s", round, k.KeyID)
				}
			}
			if d := it.at.Sub(asked); d > time.Second {
				t.Fatalf("round %d: %s's stream delivered the new keyring %v after the rotation was due", round, watchers[i].name, d)
			}
		}
	}

	// keys ls: metadata of every key, material nowhere in the answer.
	for _, tn := range c.running() {
		infos, err := tn.client.Keys(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 6 {
			t.Fatalf("%s lists %d keys, want 6", tn.name, len(infos))
		}
		raw, _ := json.Marshal(infos)
		for _, s := range overlaykeys.Subsystems {
			for _, k := range rings.Ring(s).Keys {
				for _, enc := range []string{base64.StdEncoding.EncodeToString(k.Material), hex.EncodeToString(k.Material), string(k.Material), fmt.Sprint(k.Material)} {
					if bytes.Contains(raw, []byte(enc)) {
						t.Fatalf("keys ls on %s shows key material", tn.name)
					}
				}
			}
		}
	}
	// The gossip keyring is never served; an unknown one is not found.
	if _, err := l.client.Keyring(ctxT(t), "gossip"); apiStatus(err) != 403 {
		t.Fatalf("gossip keyring: %v, want 403", err)
	}
	if _, err := l.client.Keyring(ctxT(t), "wireguard"); apiStatus(err) != 404 {
		t.Fatalf("unknown keyring: %v, want 404", err)
	}
	if k, err := l.client.Keyring(ctxT(t), "ipsec"); err != nil || len(k.Keys) != 3 {
		t.Fatalf("ipsec keyring without watch: %v", err)
	}
}

// TestRemovalReplacesKeyrings: after `node rm` of a worker, both keyrings
// are replaced, and none of the keys the worker held is in any manager's
// keyring any more.
func TestRemovalReplacesKeyrings(t *testing.T) {
	c := newCluster(t, 3, 1)
	l := c.leader()
	w := c.workers[0]
	held := map[string]bool{}
	eventually(t, 10*time.Second, "both keyrings to exist", func() bool {
		ok := true
		l.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) {
			for _, sub := range overlaykeys.Subsystems {
				ring := s.Keys.Ring(sub)
				if ring == nil {
					ok = false
					return
				}
				for _, k := range ring.Keys {
					held[k.ID] = true
				}
			}
		})
		return ok
	})
	if err := l.client.RemoveNode(ctxT(t), w.status().NodeID, false); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.managers {
		eventually(t, 10*time.Second, m.name+" holding none of the removed node's keys", func() bool {
			keys, err := m.client.Keys(context.Background())
			if err != nil {
				return false
			}
			perSub := map[string]int{}
			for _, k := range keys {
				if held[k.KeyID] {
					return false
				}
				perSub[k.Subsystem]++
			}
			return perSub["gossip"] == overlaykeys.MaxKeys && perSub["ipsec"] == overlaykeys.MaxKeys
		})
	}
}

// kickKeys makes n's key-rotation loop look at the schedule now.
func kickKeys(n *Node) {
	select {
	case n.keyKick <- struct{}{}:
	default:
	}
}
