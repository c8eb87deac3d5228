package integration

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Faults together, as Jepsen's combined nemeses: a pair runs two faults
// at once, each injecting, holding and healing on its own schedule, the
// second starting up to a second after the first. Two faults pair only
// when they need nothing the other needs (faultNeeds), and the nodes one
// of them picks as its follower (or finds as the leader) are claimed, so
// that the other picks another.

// nemesisState is the nemesis runner's state shared by every view of a
// cluster: the claims of a pair's two faults, and the spare node churn
// joins and removes.
type nemesisState struct {
	mu sync.Mutex
	// claims maps a node's index to the fault that picked it, during a
	// pair; nil when a fault runs alone.
	claims map[int]string
	// spare is the churn's extra node (index len(nodes)), made on first
	// use; spareJoins counts its joins (after the first, each reuses its
	// address).
	spare      *chaosNode
	spareJoins int
}

func (c *chaosCluster) nemesis() *nemesisState {
	if c.nem == nil {
		c.nem = &nemesisState{}
	}
	return c.nem
}

// claim records that this view's fault acts on node i, unless the other
// fault of the pair already does. A no-op outside a pair.
func (c *chaosCluster) claim(i int) {
	if c.nem == nil || c.owner == "" || i < 0 {
		return
	}
	c.nem.mu.Lock()
	defer c.nem.mu.Unlock()
	if c.nem.claims != nil && c.nem.claims[i] == "" {
		c.nem.claims[i] = c.owner
	}
}

// claimedByOther says whether the other fault of a pair acts on node i.
func (c *chaosCluster) claimedByOther(i int) bool {
	if c.nem == nil || c.owner == "" {
		return false
	}
	c.nem.mu.Lock()
	defer c.nem.mu.Unlock()
	o := c.nem.claims[i]
	return o != "" && o != c.owner
}

// mayAsk says whether to ask n for its status when looking for the
// leader. Alone, a fault asks only running nodes; in a pair the other
// fault may be starting or stopping n at that moment, so it asks every
// node (a stopped one fails at once) rather than read another
// goroutine's process handle.
func (c *chaosCluster) mayAsk(n *chaosNode) bool {
	if c.owner != "" {
		return true
	}
	return n.running()
}

// pickFollower picks, with rng, a node other than the leader l that the
// other fault of a pair has not claimed, and claims it. Alone it picks
// as the suite always has.
func (c *chaosCluster) pickFollower(l int, rng *mrand.Rand) (int, error) {
	n := len(c.nodes)
	var cands []int
	for k := range n - 1 {
		if i := (l + 1 + k) % n; !c.claimedByOther(i) {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return 0, errors.New("every follower is taken by the other fault of the pair")
	}
	i := cands[rng.IntN(len(cands))]
	c.claim(i)
	return i, nil
}

// spareLog adds the spare's log to m, if there is a spare.
func (c *chaosCluster) spareLog(m map[string]string) {
	if c.nem != nil && c.nem.spare != nil {
		m[c.nem.spare.name] = c.nem.spare.log
	}
}

// faultNeeds is what each fault needs to itself: two faults pair only if
// their needs are disjoint. "leader": it acts on the leader (two such
// would pick the same node); "leader-disk": it fills or cuts the leader's
// disk; "net": it sets the namespaces' routes (a heal clears them all);
// "membership": it removes and joins managers (the byte flips also
// "net": their join is not retried across a partition); "all": it stops every node
// or changes what every node unlocks with, so it runs alone; "settings":
// it changes the cluster's settings (the key-rotation interval). Every
// fault has a row (TestFaultCompatibility).
var faultNeeds = map[string][]string{
	"kill-leader":                  {"leader"},
	"kill-follower":                {},
	"pause-leader":                 {"leader"},
	"pause-follower":               {},
	"partition-leader":             {"net"},
	"partition-majority-minority":  {"net"},
	"partition-bridge":             {"net"},
	"partition-ring":               {"net"},
	"restart-all-locked":           {"all"},
	"rotate-unlock-key-while-down": {"all"},
	"flip-raft-byte":               {"membership", "net"},
	"flip-file-byte":               {"membership", "net"},
	"disk-full":                    {"leader", "leader-disk"},
	"power-cut-leader":             {"leader", "leader-disk"},
	"power-cut-follower":           {},
	"power-cut-all":                {"all"},
	"churn":                        {"membership"},
	// Issue 20's other faults. The one-way faults on the leader's links
	// check that the leader stays, so they claim it; a node at a new
	// address is killed and moved (the leader half the time), its record
	// changed, its namespace given an address; a skewed clock may set the
	// key-rotation interval, as rotate-keys does (which also rotates what
	// every node unlocks with, so it runs alone).
	"oneway-follower-deaf": {"leader", "net"},
	"oneway-leader-deaf":   {"leader", "net"},
	"oneway-random":        {"net"},
	"snapshot-catch-up":    {"net"},
	"slow-disk-leader":     {"leader", "leader-disk"},
	"rotate-keys":          {"all"},
	"new-address":          {"leader", "net", "membership"},
	"clock-skew":           {"leader", "settings"},
}

// compatible says whether faults a and b may run at once.
func compatible(a, b string) bool {
	if a == b {
		return false
	}
	na, oka := faultNeeds[a]
	nb, okb := faultNeeds[b]
	if !oka || !okb {
		return false
	}
	for _, x := range na {
		if x == "all" {
			return false
		}
		for _, y := range nb {
			if x == y {
				return false
			}
		}
	}
	for _, y := range nb {
		if y == "all" {
			return false
		}
	}
	return true
}

// pairOf is the fault that runs a and b at once.
func pairOf(a, b fault) fault {
	return fault{
		name: a.name + "+" + b.name,
		unavailable: func(c *chaosCluster, noNet string) string {
			if !compatible(a.name, b.name) {
				return a.name + " and " + b.name + " need the same thing (faultNeeds)"
			}
			if len(c.nodes) < 5 {
				return fmt.Sprintf("pairs need five managers (two faults at once leave three); this cluster has %d: %s", len(c.nodes), noNet)
			}
			if why := a.unavailable(c, noNet); why != "" {
				return why
			}
			return b.unavailable(c, noNet)
		},
		run: func(c *chaosCluster, rng *mrand.Rand) error { return c.runPair(a, b, rng) },
	}
}

// runPair runs a, and up to a second later b, each on its own view of
// the cluster (its owner set, so the nodes it picks are claimed), and
// waits for both to heal.
func (c *chaosCluster) runPair(a, b fault, rng *mrand.Rand) error {
	nem := c.nemesis()
	if a.name == "churn" || b.name == "churn" {
		if err := c.ensureSpare(); err != nil {
			return err
		}
	}
	nem.mu.Lock()
	nem.claims = map[int]string{}
	nem.mu.Unlock()
	defer func() {
		nem.mu.Lock()
		nem.claims = nil
		nem.mu.Unlock()
	}()
	views := []*chaosCluster{c.view(a.name), c.view(b.name)}
	rngs := []*mrand.Rand{mrand.New(mrand.NewPCG(rng.Uint64(), 1)), mrand.New(mrand.NewPCG(rng.Uint64(), 2))}
	stagger := time.Duration(rng.IntN(1000)) * time.Millisecond
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k, f := range []fault{a, b} {
		if k == 1 {
			hold(stagger)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[k] = fmt.Errorf("panic: %v", p)
				}
			}()
			if err := f.run(views[k], rngs[k]); err != nil {
				errs[k] = fmt.Errorf("%s: %w", f.name, err)
			}
		}()
	}
	wg.Wait()
	// A fault may have learnt a new unlock key on its view.
	for _, v := range views {
		if len(v.keys) > len(c.keys) {
			c.keys = v.keys
		}
	}
	return errors.Join(errs...)
}

// view is a shallow copy of c for one fault of a pair.
func (c *chaosCluster) view(owner string) *chaosCluster {
	v := *c
	v.owner = owner
	return &v
}

// pairs lists every compatible pair of avail, in order.
func pairs(avail []fault) []fault {
	var out []fault
	for i, a := range avail {
		for _, b := range avail[i+1:] {
			if compatible(a.name, b.name) {
				out = append(out, pairOf(a, b))
			}
		}
	}
	return out
}

// faultByName finds a fault of faults() by name.
func faultByName(t testing.TB, name string) fault {
	for _, f := range faults() {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no fault named %s", name)
	return fault{}
}

// faultTally is one fault's share of a soak: cycles alone and paired, the
// operations and unknown outcomes of those cycles, and whether any of its
// linearizability checks timed out or its cycle failed.
type faultTally struct {
	alone, paired, ops, unknown int
	timedOut, failed            bool
}

// soakTally counts cycles per fault; a pair's cycle counts for both.
type soakTally map[string]*faultTally

func (s soakTally) get(name string) *faultTally {
	if s[name] == nil {
		s[name] = &faultTally{}
	}
	return s[name]
}

// add counts a cycle of f (a fault or a pair, "a+b").
func (s soakTally) add(f fault, rep cycleReport) {
	parts := strings.Split(f.name, "+")
	for _, p := range parts {
		ft := s.get(p)
		if len(parts) > 1 {
			ft.paired++
		} else {
			ft.alone++
		}
		ft.ops += rep.ops
		ft.unknown += rep.unknown
		ft.timedOut = ft.timedOut || rep.result == porcupine.Unknown
	}
}

// fail marks f's faults as failed (the cycle that stopped the soak).
func (s soakTally) fail(f fault) {
	for _, p := range strings.Split(f.name, "+") {
		s.get(p).failed = true
	}
}

// lines is the per-fault table of a soak's summary.
func (s soakTally) lines() []string {
	var names []string
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	out := []string{fmt.Sprintf("%-30s %6s %6s %8s %8s  %s", "fault", "alone", "paired", "ops", "unknown", "result")}
	for _, n := range names {
		ft := s[n]
		res := "linearizable"
		switch {
		case ft.failed:
			res = "FAILED"
		case ft.timedOut:
			res = "linearizable (some checks timed out)"
		}
		out = append(out, fmt.Sprintf("%-30s %6d %6d %8d %8d  %s", n, ft.alone, ft.paired, ft.ops, ft.unknown, res))
	}
	return out
}

// pickFault picks the soak's next cycle: half the time (when there are
// pairs) a pair, else one fault alone.
func pickFault(avail, paired []fault, rng *mrand.Rand) fault {
	if len(paired) > 0 && rng.IntN(2) == 0 {
		return paired[rng.IntN(len(paired))]
	}
	return avail[rng.IntN(len(avail))]
}

// quickPairs are the pairs TestChaosQuickPairs runs: churn during a
// partition, a partition while a follower is paused, and a follower's
// power cut while the leader is killed.
var quickPairs = [][2]string{
	{"churn", "partition-leader"},
	// The spare joins as a worker in churn's second run, while the slow
	// disk's probe rotates the worker token (the soak once failed there).
	{"slow-disk-leader", "churn"},
	{"pause-follower", "partition-majority-minority"},
	{"kill-leader", "power-cut-follower"},
}

// TestChaosQuickPairs runs faults two at once, with the quick run's seed:
// each pair's cycle passes the same checks as a single fault's.
func TestChaosQuickPairs(t *testing.T) {
	if soakDuration(t) > 0 {
		t.Skip("soak requested: TestChaosSoak runs instead")
	}
	if testing.Short() {
		t.Skip("chaos suite skipped in -short mode")
	}
	seed := uint64(quickSeed)
	if v := os.Getenv("HOLDFAST_CHAOS_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	t.Logf("chaos seed %d (replay with HOLDFAST_CHAOS_SEED=%d)", seed, seed)
	if why := netnsUnavailable(); why != "" {
		t.Skip("pairs need five managers in network namespaces: " + why)
	}
	began := time.Now()
	c, noNet := chaosSetup(t)
	canary := newCanary(t)
	tally := soakTally{}
	for i, p := range quickPairs {
		f := pairOf(faultByName(t, p[0]), faultByName(t, p[1]))
		ok := t.Run(f.name, func(t *testing.T) {
			if why := f.unavailable(c, noNet); why != "" {
				t.Skip(why)
			}
			rep := c.cycle(t, seed, 100+i, f, 4*time.Second, canary)
			t.Logf("%d ops (%d recorded, %d unknown, %d failed and dropped); linearizable: %s", rep.ops, rep.recorded, rep.unknown, rep.dropped, rep.result)
			tally.add(f, rep)
		})
		if !ok {
			tally.fail(f)
			break
		}
	}
	t.Logf("quick pairs run: seed %d, %s\n%s", seed, time.Since(began).Round(time.Second), strings.Join(tally.lines(), "\n"))
}

func TestFaultCompatibility(t *testing.T) {
	for _, f := range faults() {
		if _, ok := faultNeeds[f.name]; !ok {
			t.Errorf("fault %s has no faultNeeds row: the soak would never pair it", f.name)
		}
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"churn", "partition-leader", true},
		{"kill-leader", "pause-leader", false},        // both the leader
		{"disk-full", "power-cut-leader", false},      // both the leader's disk
		{"partition-leader", "partition-ring", false}, // one heal clears both
		{"churn", "flip-raft-byte", false},            // both remove and join
		{"restart-all-locked", "pause-follower", false},
		{"kill-follower", "pause-follower", true},
		{"no-such-fault", "pause-follower", false},
	} {
		if got := compatible(c.a, c.b); got != c.want || compatible(c.b, c.a) != c.want {
			t.Errorf("compatible(%s, %s) = %v, want %v (both ways)", c.a, c.b, got, c.want)
		}
	}
}
