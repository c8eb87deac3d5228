package manager

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/holdfast/holdfast/api"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestSlowLeaderTarget(t *testing.T) {
	r := func(id string, sync float64) diskReading {
		return diskReading{id: id, addr: id + ":1", sync: ms(sync), known: true}
	}
	unknown := func(id string) diskReading { return diskReading{id: id, addr: id + ":1"} }
	cases := []struct {
		name   string
		voters []diskReading
		want   string // "" for no handover
	}{
		{"slow leader, fast followers", []diskReading{r("a", 50), r("b", 2), r("c", 3)}, "b"},
		{"the fastest follower wins", []diskReading{r("a", 50), r("b", 4), r("c", 2)}, "c"},
		{"a tie goes to the lower ID", []diskReading{r("a", 50), r("c", 2), r("b", 2)}, "b"},
		// With one follower as slow as the leader, a new leader still
		// waits for a slow disk in every quorum of three.
		{"two slow disks of three: nothing to gain", []diskReading{r("a", 50), r("b", 50), r("c", 2)}, ""},
		{"every disk slow", []diskReading{r("a", 50), r("b", 40), r("c", 45)}, ""},
		{"a fast leader", []diskReading{r("a", 2), r("b", 50), r("c", 3)}, ""},
		{"a gain too small to matter", []diskReading{r("a", 8), r("b", 1), r("c", 1)}, ""},
		{"not a third faster", []diskReading{r("a", 30), r("b", 18), r("c", 18)}, ""},
		{"a third faster", []diskReading{r("a", 30), r("b", 15), r("c", 15)}, "b"},
		{"the leader's own time unknown", []diskReading{unknown("a"), r("b", 2), r("c", 2)}, ""},
		// A follower that is down cannot help any quorum.
		{"one follower unknown", []diskReading{r("a", 50), r("b", 2), unknown("c")}, ""},
		{"five voters, two fast", []diskReading{r("a", 50), r("b", 2), r("c", 2), r("d", 60), r("e", 60)}, ""},
		{"five voters, three fast", []diskReading{r("a", 50), r("b", 2), r("c", 3), r("d", 4), r("e", 60)}, "b"},
		{"a lone voter", []diskReading{r("a", 50)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, cost, best, ok := slowLeaderTarget("a", tc.voters)
			if tc.want == "" {
				if ok {
					t.Fatalf("handed over to %s (cost %s, after %s); want no handover", got.id, cost, best)
				}
				return
			}
			if !ok || got.id != tc.want {
				t.Fatalf("target %q (ok %v, cost %s, after %s); want %q", got.id, ok, cost, best, tc.want)
			}
			if got.addr != tc.want+":1" {
				t.Fatalf("target address %q", got.addr)
			}
		})
	}
}

// TestPeerDiskRefusesImpossibleReadings: a manager's answer that claims
// a negative, NaN or huge sync time is no reading.
func TestPeerDiskRefusesImpossibleReadings(t *testing.T) {
	var p peerDisks
	now := time.Now()
	for _, secs := range []float64{-0.001, math.NaN(), 3600} {
		p.record("m", &api.LevelInfo{LogSyncSeconds: secs, LogSyncSamples: syncMinSamples}, now)
		if d, ok := p.get("m", now); ok {
			t.Fatalf("reading %v taken as %s", secs, d)
		}
	}
	p.record("m", &api.LevelInfo{LogSyncSeconds: 0.002, LogSyncSamples: syncMinSamples}, now)
	if d, ok := p.get("m", now); !ok || d != 2*time.Millisecond {
		t.Fatalf("a good reading: %s, %v", d, ok)
	}
}

func TestCommitCost(t *testing.T) {
	l := diskReading{id: "a", sync: ms(10), known: true}
	others := []diskReading{{id: "b", sync: ms(30), known: true}, {id: "c", sync: ms(5), known: true}, {id: "d"}, {id: "e", sync: ms(7), known: true}}
	// Five voters: a quorum of three, the leader and its two fastest.
	if c, ok := commitCost(l, others, 3); !ok || c != ms(17) {
		t.Fatalf("cost %s, %v; want 17ms", c, ok)
	}
	if _, ok := commitCost(l, others[:2], 4); ok {
		t.Fatal("a cost without enough known members for a quorum")
	}
}

func TestSyncTimesMedianOfTheWindow(t *testing.T) {
	var st syncTimes
	t0 := time.Now()
	// Old and slow, then recent and fast: only the recent count.
	for i := range 20 {
		st.observe(ms(100), t0.Add(time.Duration(i)*time.Millisecond))
	}
	later := t0.Add(time.Minute)
	for i := range syncMinSamples - 1 {
		st.observe(ms(float64(1+i)), later.Add(time.Duration(i)*time.Millisecond))
	}
	if _, n, ok := st.reading(later.Add(time.Second)); ok || n != syncMinSamples-1 {
		t.Fatalf("a reading from %d syncs (ok %v); want none from %d", n, ok, syncMinSamples-1)
	}
	st.observe(ms(8), later.Add(time.Second))
	d, n, ok := st.reading(later.Add(time.Second))
	if !ok || n != syncMinSamples || d != ms(5) {
		t.Fatalf("reading %s from %d (ok %v); want 5ms from %d", d, n, ok, syncMinSamples)
	}
	// The ring keeps only the latest syncRing.
	for i := range 2 * syncRing {
		st.observe(ms(3), later.Add(2*time.Second+time.Duration(i)))
	}
	if d, n, _ := st.reading(later.Add(3 * time.Second)); n != syncRing || d != ms(3) {
		t.Fatalf("reading %s from %d; want 3ms from %d", d, n, syncRing)
	}
}

// fakeSlowRaft is a leader whose transfers are recorded.
type fakeSlowRaft struct {
	leader    bool
	voters    []raft.Server
	transfers []string
	fail      error
}

func (f *fakeSlowRaft) isLeader() bool                  { return f.leader }
func (f *fakeSlowRaft) servers() []raft.Server          { return f.voters }
func (f *fakeSlowRaft) reachable(id raft.ServerID) bool { return id != "down" }
func (f *fakeSlowRaft) transferTo(id, addr string) error {
	f.transfers = append(f.transfers, id)
	return f.fail
}

func TestSlowDiskWatchHandsOverAfterConsecutiveProbesOnce(t *testing.T) {
	now := time.Now()
	fr := &fakeSlowRaft{leader: true, voters: []raft.Server{
		{ID: "a", Address: "a:1", Suffrage: raft.Voter},
		{ID: "b", Address: "b:1", Suffrage: raft.Voter},
		{ID: "c", Address: "c:1", Suffrage: raft.Voter},
		{ID: "n", Address: "n:1", Suffrage: raft.Nonvoter},
	}}
	w := &slowDiskWatch{self: "a", raft: fr, own: &syncTimes{}, peers: &peerDisks{}, log: slog.New(slog.DiscardHandler)}
	fill := func(at time.Time, own, b, c time.Duration) {
		w.own = &syncTimes{}
		for i := range syncMinSamples {
			w.own.observe(own, at.Add(-time.Duration(i)*time.Millisecond))
		}
		w.peers.record("b", &api.LevelInfo{LogSyncSeconds: b.Seconds(), LogSyncSamples: syncMinSamples}, at)
		w.peers.record("c", &api.LevelInfo{LogSyncSeconds: c.Seconds(), LogSyncSamples: syncMinSamples}, at)
		// A non-voter with the fastest disk is never a target.
		w.peers.record("n", &api.LevelInfo{LogSyncSeconds: 0.0001, LogSyncSamples: syncMinSamples}, at)
	}
	step := func(at time.Time) time.Time { w.check(at); return at.Add(2 * time.Second) }

	at := now
	fill(at, ms(60), ms(2), ms(3))
	for range slowDiskConsecutive - 1 {
		at = step(at)
	}
	if len(fr.transfers) != 0 {
		t.Fatalf("handed over after %d probes: %v", slowDiskConsecutive-1, fr.transfers)
	}
	// One probe that finds the disk fast starts the count again.
	fill(at, ms(2), ms(2), ms(3))
	at = step(at)
	fill(at, ms(60), ms(2), ms(3))
	for range slowDiskConsecutive - 1 {
		at = step(at)
	}
	if len(fr.transfers) != 0 {
		t.Fatalf("a fast probe did not reset the count: %v", fr.transfers)
	}
	tried := at
	at = step(at)
	if len(fr.transfers) != 1 || fr.transfers[0] != "b" {
		t.Fatalf("transfers %v; want [b]", fr.transfers)
	}
	// Still slow (the transfer failed, say): no second try within the
	// cooldown, however many probes find it slow.
	for at.Sub(tried) < slowDiskCooldown {
		fill(at, ms(60), ms(2), ms(3))
		at = step(at)
	}
	if len(fr.transfers) != 1 {
		t.Fatalf("tried again within the cooldown: %v", fr.transfers)
	}
	for range slowDiskConsecutive {
		fill(at, ms(60), ms(2), ms(3))
		at = step(at)
	}
	if len(fr.transfers) != 2 {
		t.Fatalf("no second try after the cooldown: %v", fr.transfers)
	}
	// Readings older than the window do not count; a follower not
	// leading does nothing.
	stale := at.Add(syncWindow + time.Second)
	for range 2 * slowDiskConsecutive {
		w.check(stale)
	}
	fr.leader = false
	fill(at.Add(slowDiskCooldown), ms(60), ms(2), ms(3))
	for range 2 * slowDiskConsecutive {
		at = step(at.Add(slowDiskCooldown))
	}
	if len(fr.transfers) != 2 {
		t.Fatalf("transfers %v after stale readings and while following", fr.transfers)
	}
}

// TestSlowLeaderHandsOver runs three managers whose first leader's log
// syncs each take 40 ms more: under writes it hands leadership to
// another manager, and no write fails for it.
func TestSlowLeaderHandsOver(t *testing.T) {
	var slow atomic.Bool
	m0 := newTestNode(t, "m0", func(c *Config) {
		c.logSyncHook = func() {
			if slow.Load() {
				time.Sleep(40 * time.Millisecond) // the injected disk latency
			}
		}
	})
	init, err := m0.client.Init(ctxT(t), api.InitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, init: init, managers: []*testNode{m0}}
	c.managers = append(c.managers, c.join("m1", init.ManagerToken), c.join("m2", init.ManagerToken))
	if l := c.leader(); l != m0 {
		t.Fatalf("%s leads; the test slows m0", l.name)
	}
	before := testutil.ToFloat64(slowDiskHandovers)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failed atomic.Value
	var acked atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_, err := c.managers[1+w%2].client.CreateSecret(ctx, api.SecretCreateRequest{Name: fmt.Sprintf("w%d-%d", w, i), Data: []byte("x")})
				if err != nil && ctx.Err() == nil {
					failed.CompareAndSwap(nil, err)
				}
				if err == nil {
					acked.Add(1)
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	slow.Store(true)
	eventually(t, 60*time.Second, "leadership moved off the slow m0", func() bool {
		return !m0.status().IsLeader && (c.managers[1].status().IsLeader || c.managers[2].status().IsLeader)
	})
	// Writes go on under the new leader.
	n := acked.Load()
	eventually(t, 20*time.Second, "writes acknowledged after the handover", func() bool { return acked.Load() > n+20 })
	cancel()
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("a write failed across the handover: %v", err)
	}
	if got := testutil.ToFloat64(slowDiskHandovers); got < before+1 {
		t.Fatalf("holdfast_slow_disk_handovers_total %v; want at least %v", got, before+1)
	}
	if !strings.Contains(m0.logs.String(), "handing leadership to a manager whose disk is faster") {
		t.Fatal("m0 did not log the handover")
	}
}
