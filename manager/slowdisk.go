package manager

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
)

// A leader whose disk is slow hands leadership to a manager whose disk
// is not.
//
// hashicorp/raft's leader writes each batch to its own log before it
// sends it to the followers, and commits once a majority (itself
// counted) holds it. A write therefore costs about the leader's sync time
// plus the time of the quorum's fastest other members; raft has no rule
// that moves leadership for being slow, since heartbeats keep flowing.
//
// Every manager times the disk's part of each batch its log store makes
// durable (the WAL's write and fdatasync, not the sealing before it:
// raftlog.Store.ObserveSyncs) and keeps the recent ones (syncTimes); it tells its median to whoever asks its level (the level
// probe every other manager runs every levelProbeInterval). The leader
// estimates, from the medians, what a write would cost under each voter
// as leader (commitCost) and, when another voter would commit in at most
// two thirds of the time and at least slowDiskMinGain sooner, on
// slowDiskConsecutive probes in a row, it hands leadership to the
// fastest such voter (raft's leadership transfer: the target is brought
// up to date first, then told to start an election at once). It then
// waits slowDiskCooldown before it would do so again, so a disk that is
// slow for everyone, or a cluster whose disks take turns, does not make
// leadership bounce. The target was judged fast by the same rule, so it
// does not hand back.

const (
	// syncWindow is how far back a manager's sync times count.
	syncWindow = 10 * time.Second
	// syncMinSamples is how many syncs in the window make a median worth
	// acting on: a leader without writes has nothing to hand over for.
	syncMinSamples = 8
	// syncRing is how many of its latest syncs a manager keeps.
	syncRing = 128
	// slowDiskMinGain is the least a handover must save a write.
	slowDiskMinGain = 10 * time.Millisecond
	// slowDiskConsecutive is how many probes in a row must find the
	// leader slow before it hands over.
	slowDiskConsecutive = 3
	// slowDiskCooldown is how long after a handover (or a failed try) a
	// manager leading again does not try another.
	slowDiskCooldown = time.Minute
)

// syncTimes keeps the durations of a manager's latest log syncs. Safe for
// concurrent use.
type syncTimes struct {
	mu   sync.Mutex
	ring [syncRing]syncSample
	next int
	n    int
}

type syncSample struct {
	d  time.Duration
	at time.Time // monotonic
}

func (t *syncTimes) observe(d time.Duration, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring[t.next] = syncSample{d: d, at: at}
	t.next = (t.next + 1) % syncRing
	t.n = min(t.n+1, syncRing)
}

// median returns the median of the syncs taken since since, and how many
// there were.
func (t *syncTimes) median(since time.Time) (time.Duration, int) {
	t.mu.Lock()
	var ds []time.Duration
	for i := range t.n {
		if s := t.ring[i]; !s.at.Before(since) {
			ds = append(ds, s.d)
		}
	}
	t.mu.Unlock()
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], len(ds)
}

// reading is this manager's recent median sync time as GET
// /internal/v1/level reports it; ok is false with too few syncs.
func (t *syncTimes) reading(now time.Time) (d time.Duration, samples int, ok bool) {
	d, samples = t.median(now.Add(-syncWindow))
	return d, samples, samples >= syncMinSamples
}

// syncObserver returns what the sealed log store calls after each batch
// it wrote to its WAL and synced: it keeps the time in times. slow, when
// set, runs first, inside the store's write (tests make a manager's disk
// slow with it), and counts as part of the sync.
func syncObserver(times *syncTimes, slow func()) func(time.Duration) {
	return func(d time.Duration) {
		if slow != nil {
			began := time.Now()
			slow()
			d += time.Since(began)
		}
		times.observe(d, time.Now())
	}
}

// diskReading is one voter's recent median sync time.
type diskReading struct {
	id, addr string
	sync     time.Duration
	known    bool // false: too few syncs, no answer, or unreachable
}

// commitCost estimates what a write costs with leader as leader: its own
// sync, then the slowest of the quorum's other members it must wait for
// (the fastest quorum-1 of the others). ok is false when too few of the
// others' times are known to make a quorum.
func commitCost(leader diskReading, others []diskReading, quorum int) (time.Duration, bool) {
	if !leader.known {
		return 0, false
	}
	var ds []time.Duration
	for _, o := range others {
		if o.known {
			ds = append(ds, o.sync)
		}
	}
	need := quorum - 1
	if need == 0 {
		return leader.sync, true
	}
	if len(ds) < need {
		return 0, false
	}
	slices.Sort(ds)
	return leader.sync + ds[need-1], true
}

// slowLeaderTarget decides whether the leader self, among voters (self
// included), should hand over for its disk, and to whom: the voter with
// the lowest estimated write cost, if that is at most two thirds of the
// leader's and at least slowDiskMinGain less. Of equal costs, the faster disk
// wins, then the lower ID.
func slowLeaderTarget(self string, voters []diskReading) (target diskReading, cost, best time.Duration, ok bool) {
	quorum := len(voters)/2 + 1
	others := func(id string) []diskReading {
		var out []diskReading
		for _, v := range voters {
			if v.id != id {
				out = append(out, v)
			}
		}
		return out
	}
	var own diskReading
	for _, v := range voters {
		if v.id == self {
			own = v
		}
	}
	cost, known := commitCost(own, others(self), quorum)
	if !known {
		return diskReading{}, 0, 0, false
	}
	found := false
	for _, v := range voters {
		if v.id == self || !v.known {
			continue
		}
		c, ok := commitCost(v, others(v.id), quorum)
		if !ok {
			continue
		}
		if !found || c < best || (c == best && (v.sync < target.sync || v.sync == target.sync && v.id < target.id)) {
			target, best, found = v, c, true
		}
	}
	if !found || best*3 > cost*2 || cost-best < slowDiskMinGain {
		return diskReading{}, cost, best, false
	}
	return target, cost, best, true
}

// peerDisks is the latest sync median each other manager reported, with
// when it was heard (monotonic). Safe for concurrent use.
type peerDisks struct {
	mu    sync.Mutex
	known map[string]peerDisk
}

type peerDisk struct {
	sync  time.Duration
	ok    bool
	heard time.Time
}

// record keeps what a manager's level answer said of its disk.
func (p *peerDisks) record(id string, li *api.LevelInfo, heard time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known == nil {
		p.known = map[string]peerDisk{}
	}
	// A time no disk takes (negative, NaN, beyond a minute) is no
	// reading: it must not make that manager look like the fastest.
	secs := li.LogSyncSeconds
	valid := secs >= 0 && secs <= 60 // false for NaN too
	p.known[id] = peerDisk{
		sync:  time.Duration(secs * float64(time.Second)),
		ok:    valid && li.LogSyncSamples >= syncMinSamples,
		heard: heard,
	}
}

// get returns a manager's reading if heard within syncWindow.
func (p *peerDisks) get(id string, now time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.known[id]
	if !ok || !d.ok || now.Sub(d.heard) > syncWindow {
		return 0, false
	}
	return d.sync, true
}

// slowDiskRaft is what the slow-disk watcher needs of a manager's raft
// half. *raftNode is one.
type slowDiskRaft interface {
	isLeader() bool
	servers() []raft.Server
	reachable(id raft.ServerID) bool
	transferTo(id, addr string) error
}

var _ slowDiskRaft = (*raftNode)(nil)

// slowDiskWatch runs on every manager and acts while it leads: every
// levelProbeInterval it compares its disk with the other voters' and
// hands leadership over when its own holds every write back.
type slowDiskWatch struct {
	self  string
	raft  slowDiskRaft
	own   *syncTimes
	peers *peerDisks
	every time.Duration
	log   *slog.Logger

	slowFor   int       // consecutive probes that found this leader slow
	lastTried time.Time // monotonic; zero: never
}

func (w *slowDiskWatch) Run(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		w.check(time.Now())
	}
}

// readings is every voter's reading as this manager knows it now.
func (w *slowDiskWatch) readings(now time.Time) []diskReading {
	var out []diskReading
	for _, srv := range w.raft.servers() {
		if srv.Suffrage != raft.Voter {
			continue
		}
		r := diskReading{id: string(srv.ID), addr: string(srv.Address)}
		if r.id == w.self {
			r.sync, _, r.known = w.own.reading(now)
		} else if w.raft.reachable(srv.ID) {
			r.sync, r.known = w.peers.get(r.id, now)
		}
		out = append(out, r)
	}
	return out
}

// check is one probe: it hands over once the leader has been found slow
// slowDiskConsecutive times in a row, outside the cooldown.
func (w *slowDiskWatch) check(now time.Time) {
	if !w.raft.isLeader() {
		w.slowFor = 0
		return
	}
	voters := w.readings(now)
	target, cost, best, slow := slowLeaderTarget(w.self, voters)
	if !slow {
		w.slowFor = 0
		return
	}
	w.slowFor++
	if w.slowFor < slowDiskConsecutive || (!w.lastTried.IsZero() && now.Sub(w.lastTried) < slowDiskCooldown) {
		return
	}
	w.slowFor, w.lastTried = 0, now
	own, _, _ := w.own.reading(now)
	w.log.Warn("this leader's disk holds every write back: handing leadership to a manager whose disk is faster",
		"own_sync", own.Round(time.Microsecond).String(), "target", target.id, "target_sync", target.sync.Round(time.Microsecond).String(),
		"write_cost_now", cost.Round(time.Microsecond).String(), "write_cost_after", best.Round(time.Microsecond).String())
	slowDiskHandovers.Inc()
	if err := w.raft.transferTo(target.id, target.addr); err != nil {
		// Raft gives up after an election timeout; the target may still
		// win the election it was told to start.
		w.log.Warn("handing leadership over for a slow disk did not finish", "target", target.id, "err", err)
		return
	}
	w.log.Info("handed leadership over for a slow disk", "target", target.id)
}

// newSlowDiskWatch builds manager rn's slow-disk watcher.
func newSlowDiskWatch(n *Node, rn *raftNode) *slowDiskWatch {
	return &slowDiskWatch{self: rn.nodeID, raft: rn, own: &rn.syncs, peers: &rn.peerDisks, every: levelProbeInterval, log: n.logger}
}

// reachable says whether the leader's heartbeats to id are going through.
func (rn *raftNode) reachable(id raft.ServerID) bool {
	rn.reachMu.Lock()
	defer rn.reachMu.Unlock()
	return !rn.unreachable[id]
}

// transferTo hands leadership to the voter id at addr.
func (rn *raftNode) transferTo(id, addr string) error {
	return rn.r.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error()
}
