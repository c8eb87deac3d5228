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

// The clock of a node, and how far it is off the other managers'.
//
// Every wall-clock reading that decides something (a certificate's dates,
// the renewal point, key-rotation schedules, expiry of tokens and of the
// deny-list, CA-rotation and secret timestamps) goes through the node's
// clock, Config.Clock; only a test build sets it (the daemon's test-only
// HOLDFAST_TEST_CLOCK_OFFSET). Durations (timeouts, backoff, RTT) use the
// monotonic clock and are not affected.
//
// Each manager measures its offset from the others: every
// skewProbeInterval it asks each other manager in raft's configuration
// for its level (GET /internal/v1/level), whose answer carries the
// answerer's clock, and compares that with the midpoint of its own
// readings before and after. Its offset is the median over the managers,
// itself counted at offset zero, so that one wrong clock among three or
// five managers blames only itself. A manager further off than
// MaxClockSkew refuses to issue certificates (clock_skew).

// MaxClockSkew is how far a manager's clock may be off the median of the
// managers' clocks before it refuses to issue certificates: a certificate
// is backdated by ca.LeafBackdate (a minute), so an issuer off by less
// than that still dates certificates that every peer accepts at once.
const MaxClockSkew = 30 * time.Second

const (
	// skewProbeInterval is how often a manager measures its offset.
	skewProbeInterval = 2 * time.Second
	// skewMaxRTT is the longest exchange whose sample counts: a slower
	// one says too little about when the peer read its clock.
	skewMaxRTT = 2 * time.Second
	// skewSampleTTL is how long a peer's sample counts without a newer
	// one.
	skewSampleTTL = time.Minute
)

// now returns the node's wall clock: Config.Clock, or time.Now.
func (c *Config) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

// skewSample is one measurement against a peer's clock.
type skewSample struct {
	// offset is this node's clock minus the peer's.
	offset time.Duration
	// taken is when it was measured (monotonic).
	taken time.Time
}

// skewSampleOf measures this node's offset from a peer's clock reading
// peer, taken between this node's readings sent and received: the peer is
// assumed to have read its clock halfway. ok is false for a sample that
// says too little (no reading, a slow exchange, received before sent).
func skewSampleOf(sent, received, peer time.Time) (offset time.Duration, ok bool) {
	rtt := received.Sub(sent)
	if peer.IsZero() || rtt < 0 || rtt > skewMaxRTT {
		return 0, false
	}
	return sent.Add(rtt / 2).Sub(peer), true
}

// medianSkew is this node's offset from the managers' median clock, given
// its offsets from each peer that answered: the median over them and this
// node's own clock (offset zero). With an even count, of the two middle
// values the one nearer zero: a manager is blamed only when more than half
// the clocks it heard from agree it is off. ok is false with no peer.
func medianSkew(peers []time.Duration) (time.Duration, bool) {
	if len(peers) == 0 {
		return 0, false
	}
	all := append([]time.Duration{0}, peers...)
	slices.Sort(all)
	m := len(all) / 2
	if len(all)%2 == 1 {
		return all[m], true
	}
	a, b := all[m-1], all[m]
	if abs(a) <= abs(b) {
		return a, true
	}
	return b, true
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// skewRefusal decides whether a manager whose estimated offset is offset
// (known: some peer answered) may issue a certificate: nil, or the
// clock_skew error. A manager that has heard from no other manager (the
// only one, or cut off) cannot tell and issues.
func skewRefusal(offset time.Duration, known bool, allowed time.Duration) error {
	if !known || abs(offset) <= allowed {
		return nil
	}
	return api.Errorf(api.CodeClockSkew,
		"this manager's clock is %s %s the other managers' (more than the allowed %s): it refuses to issue a certificate it would date wrongly; ask another manager, and fix this machine's clock (NTP)",
		abs(offset).Round(time.Second), aheadOrBehind(offset), allowed)
}

func aheadOrBehind(offset time.Duration) string {
	if offset < 0 {
		return "behind"
	}
	return "ahead of"
}

// clockSkew holds a manager's latest sample against each peer and the
// estimate they make. Safe for concurrent use.
type clockSkew struct {
	allowed time.Duration
	log     *slog.Logger
	// clock is the node's wall clock; nil: no jump check (jumped).
	clock func() time.Time

	mu       sync.Mutex
	samples  map[string]skewSample
	refusing bool // as last logged
	// measuredWall and measuredMono are the node's wall clock (without
	// its monotonic reading) and the monotonic clock when the last good
	// sample was taken.
	measuredWall, measuredMono time.Time
}

func newClockSkew(allowed time.Duration, log *slog.Logger) *clockSkew {
	return &clockSkew{allowed: allowed, log: log, samples: map[string]skewSample{}}
}

// record keeps peer's sample, or forgets the peer's old one when the
// exchange said too little.
func (c *clockSkew) record(peer string, sent, received, peerTime time.Time) {
	off, ok := skewSampleOf(sent, received, peerTime)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		c.samples[peer] = skewSample{offset: off, taken: time.Now()}
		c.measuredWall, c.measuredMono = received.Round(0), time.Now()
	}
}

// keepOnly forgets the samples of peers not in ids (a removed manager).
func (c *clockSkew) keepOnly(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.samples {
		if !slices.Contains(ids, id) {
			delete(c.samples, id)
		}
	}
}

// estimate returns the offset from the managers' median clock and how
// many peers' samples made it; ok is false with none.
func (c *clockSkew) estimate() (offset time.Duration, peers int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var offs []time.Duration
	for _, s := range c.samples {
		if time.Since(s.taken) <= skewSampleTTL {
			offs = append(offs, s.offset)
		}
	}
	offset, ok = medianSkew(offs)
	return offset, len(offs), ok
}

// jumped says how far the wall clock moved against the monotonic clock
// since the last measurement: a clock stepped since (by NTP, an
// operator, a VM resumed) makes that measurement say nothing until the
// next probe, a couple of seconds later. ok is false with no
// measurement or within the allowed skew.
func (c *clockSkew) jumped() (time.Duration, bool) {
	if c.clock == nil {
		return 0, false
	}
	c.mu.Lock()
	wall, mono := c.measuredWall, c.measuredMono
	c.mu.Unlock()
	if mono.IsZero() {
		return 0, false
	}
	d := c.clock().Round(0).Sub(wall) - time.Since(mono)
	return d, abs(d) > c.allowed
}

// checkIssue is nil when this manager may issue a certificate now.
// Besides the estimate, a clock that jumped since it was last measured
// refuses too: the soak found a manager whose clock had just moved 3
// minutes ahead issue a certificate dated in the future in the second
// before its next probe.
func (c *clockSkew) checkIssue() error {
	if d, ok := c.jumped(); ok {
		return api.Errorf(api.CodeClockSkew,
			"this manager's clock moved %s %s since it was last compared with the other managers' (more than the allowed %s): it refuses to issue a certificate until it has measured again (within seconds); ask another manager, and check this machine's clock (NTP)",
			abs(d).Round(time.Second), map[bool]string{true: "ahead", false: "back"}[d > 0], c.allowed)
	}
	off, _, ok := c.estimate()
	return skewRefusal(off, ok, c.allowed)
}

// status is the estimate as `holdfast status` shows it; nil when unknown.
func (c *clockSkew) status() *api.ClockSkew {
	off, peers, ok := c.estimate()
	if !ok {
		return nil
	}
	// Refusing is what checkIssue decides: a clock stepped since it was
	// last measured refuses too, before the estimate shows it.
	return &api.ClockSkew{OffsetSeconds: off.Seconds(), Peers: peers, AllowedSeconds: c.allowed.Seconds(), Refusing: c.checkIssue() != nil}
}

// logChange logs when the estimate crosses the allowed skew, either way.
func (c *clockSkew) logChange() {
	off, peers, ok := c.estimate()
	refusing := skewRefusal(off, ok, c.allowed) != nil
	c.mu.Lock()
	changed := refusing != c.refusing
	c.refusing = refusing
	c.mu.Unlock()
	switch {
	case changed && refusing:
		c.log.Error("this manager's clock is off the other managers' clocks: it refuses to issue certificates until it is right; check NTP",
			"offset", off.Round(time.Millisecond).String(), "direction", aheadOrBehind(off), "peers", peers, "allowed", c.allowed.String())
	case changed:
		c.log.Info("this manager's clock agrees with the other managers' again: it issues certificates",
			"offset", off.Round(time.Millisecond).String(), "peers", peers)
	}
}

// skewRaft is what the skew prober needs of a manager's raft half.
// *raftNode is one.
type skewRaft interface {
	servers() []raft.Server
}

var _ skewRaft = (*raftNode)(nil)

// skewProber runs on every manager: it measures the node's clock against
// every other manager's, every skewProbeInterval.
type skewProber struct {
	self string
	raft skewRaft
	skew *clockSkew
	// now is the node's clock.
	now func() time.Time
	// ask asks the manager at addr its level, whose answer carries its
	// clock.
	ask   func(ctx context.Context, addr string) (*api.LevelInfo, error)
	every time.Duration
}

func (p *skewProber) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		p.probe(ctx)
		p.skew.logChange()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// probe samples every other member of raft's configuration at once.
func (p *skewProber) probe(ctx context.Context) {
	var wg sync.WaitGroup
	var ids []string
	for _, srv := range p.raft.servers() {
		ids = append(ids, string(srv.ID))
		if string(srv.ID) == p.self {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, skewMaxRTT)
			defer cancel()
			sent := p.now()
			li, err := p.ask(ctx, string(srv.Address))
			received := p.now()
			if err == nil {
				p.skew.record(string(srv.ID), sent, received, li.Time)
			}
		})
	}
	wg.Wait()
	p.skew.keepOnly(ids)
}

// newSkewProber builds manager rn's skew prober.
func newSkewProber(n *Node, inc *incarnation, rn *raftNode) *skewProber {
	return &skewProber{
		self: rn.nodeID,
		raft: rn,
		skew: n.skew,
		now:  n.cfg.now,
		ask: func(ctx context.Context, addr string) (*api.LevelInfo, error) {
			return peerClient(inc, addr).Level(ctx)
		},
		every: skewProbeInterval,
	}
}
