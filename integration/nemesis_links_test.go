package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/holdfast/holdfast/api"
)

// The faults of issue 20 that need no new product code: one-way links,
// snapshot catch-up under load, a slow disk, and DEK and data-plane key
// rotations while another fault runs. Their rows are in faults().

// Snapshot tuning: the chaos nodes run the failpoints build (no point is
// armed) so that they read these, and raft snapshots and compacts every
// few seconds under the workload; a follower cut off for a second or two
// then needs a snapshot to catch up.
var chaosTuneEnv = []string{
	"HOLDFAST_TEST_SNAPSHOT_THRESHOLD=64",
	"HOLDFAST_TEST_TRAILING_LOGS=16",
	"HOLDFAST_TEST_SNAPSHOT_INTERVAL=250ms",
}

var (
	chaosBinOnce sync.Once
	chaosBin     string
	chaosEnv     []string
	chaosUntuned string // why the nodes run untuned, or ""
)

// chaosBinary is the binary chaos nodes run and what it adds to their
// environment: the failpoints build with chaosTuneEnv, or, if that build
// fails, the product binary (and snapshot catch-up is skipped).
func chaosBinary() (string, []string) {
	chaosBinOnce.Do(func() {
		bin, err := failpointBinary()
		if err != nil {
			chaosBin, chaosUntuned = binary, "the failpoints build (which reads the snapshot thresholds) failed: "+err.Error()
			return
		}
		chaosBin, chaosEnv = bin, chaosTuneEnv
	})
	return chaosBin, chaosEnv
}

// needsSnapshotTuning says why the nodes do not snapshot often, or "".
func needsSnapshotTuning(c *chaosCluster, noNet string) string {
	chaosBinary()
	return chaosUntuned
}

// ---- one-way links ----

// oneWay makes node from unable to reach node to, while to still reaches
// from: in from's namespace, ip rules prohibit packets to to's ports
// (TCP; UDP too for gossip), so every connection from dials to to fails
// (established ones stall), while to's connections to from, whose packets
// from→to carry to's ephemeral port, work. There is no iptables or nft
// here; a policy rule matching the destination port drops what a
// stateful firewall would if told to drop every packet of the
// connections from opened to to. The returned function removes the
// rules.
func (h *netHosts) oneWay(from, to int, ports []hostPort) (func() error, error) {
	var added [][]string
	undo := func() error {
		var errs []error
		for _, r := range added {
			if err := ipCmd(append([]string{"-n", h.ns[from], "rule", "del"}, r...)...); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, p := range ports {
		r := []string{"to", nodeIP(to) + "/32", "ipproto", p.proto, "dport", strconv.Itoa(p.port), "prohibit"}
		if err := ipCmd(append([]string{"-n", h.ns[from], "rule", "add"}, r...)...); err != nil {
			return undo, err
		}
		added = append(added, r)
	}
	return undo, nil
}

// hostPort is a port of a node that a one-way rule closes.
type hostPort struct {
	proto string
	port  int
}

// nodePorts are the ports node i listens on: its raft and API port (TCP)
// and, if it gossips, its gossip port (TCP and UDP).
func (c *chaosCluster) nodePorts(i int) ([]hostPort, error) {
	n := c.nodes[i]
	_, p, err := net.SplitHostPort(n.listen)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(p)
	out := []hostPort{{"tcp", port}}
	st, err := n.status()
	if err != nil {
		// Down (the other fault of a pair may have stopped it, or churn
		// wiped it): its gossip port is not known now; the main port is
		// cut all the same.
		c.t.Logf("one-way link to %s: its gossip port is unknown (%v); cutting its main port only", n.name, err)
		return out, nil
	}
	if st.Gossip != nil {
		if _, gp, err := net.SplitHostPort(st.Gossip.Addr); err == nil {
			if g, _ := strconv.Atoi(gp); g > 0 {
				out = append(out, hostPort{"tcp", g}, hostPort{"udp", g})
			}
		}
	}
	return out, nil
}

// oneWayLinks cuts the directed links edges ([from, to]: from cannot
// reach to), holds for d while watch (if set) checks the cluster at each
// tick, and heals.
func (c *chaosCluster) oneWayLinks(edges [][2]int, d time.Duration, watch func() error) error {
	var undos []func() error
	heal := func() error {
		var errs []error
		for _, u := range undos {
			errs = append(errs, u())
		}
		return errors.Join(errs...)
	}
	for _, e := range edges {
		ports, err := c.nodePorts(e[1])
		if err != nil {
			return errors.Join(err, heal())
		}
		undo, err := c.hosts.oneWay(e[0], e[1], ports)
		undos = append(undos, undo)
		if err != nil {
			return errors.Join(err, heal())
		}
	}
	var werr error
	if watch == nil {
		hold(d)
	} else {
		end := time.Now().Add(d)
		for time.Now().Before(end) && werr == nil {
			werr = watch()
			hold(50 * time.Millisecond)
		}
	}
	return errors.Join(werr, heal())
}

// leaderTerm is who leads, as the leader itself says, and its term.
type leaderTerm struct {
	idx  int
	id   string
	term uint64
}

func (c *chaosCluster) leaderTerm() (leaderTerm, error) {
	l, err := c.leader()
	if err != nil {
		return leaderTerm{}, err
	}
	st, err := c.nodes[l].status()
	if err != nil {
		return leaderTerm{}, err
	}
	if !st.IsLeader {
		return leaderTerm{}, fmt.Errorf("%s no longer leads", c.nodes[l].name)
	}
	return leaderTerm{l, st.NodeID, st.Raft.Term}, nil
}

// errLeaderDisturbed is a healthy majority's leader deposed by a node on
// a one-way link that it can live with.
var errLeaderDisturbed = errors.New("a one-way link disturbed the leader")

// leaderWatch checks, at each tick of a one-way fault and until the node
// on the link follows again, that the node (which cannot hear the leader,
// or cannot reach it) never runs ahead of the leader's term: without
// pre-vote it would campaign at ever higher terms, and once healed its
// term would depose a leader that a majority hears (the checks catch that
// with pre-vote disabled). A leader change that the node had no part in
// (an overloaded machine missing a lease) is logged, not failed, and ends
// the watch.
type leaderWatch struct {
	c     *chaosCluster
	was   leaderTerm
	node  int
	moved bool
}

func (w *leaderWatch) check() error {
	if w.moved {
		return nil
	}
	c, was := w.c, w.was
	lst, err := c.nodes[was.idx].status()
	if err != nil {
		return nil // a slow answer; look again at the next tick
	}
	fst, ferr := c.nodes[w.node].status()
	if !lst.IsLeader || lst.Raft.Term != was.term {
		w.moved = true
		fterm := "?"
		if ferr == nil {
			fterm = fmt.Sprint(fst.Raft.Term)
		}
		c.t.Logf("one-way link: %s no longer leads at term %d (leader %v, term %d) and %s, on the link, is at term %s: not its doing",
			c.nodes[was.idx].name, was.term, lst.IsLeader, lst.Raft.Term, c.nodes[w.node].name, fterm)
		return nil
	}
	if ferr == nil && fst.Raft.Term > was.term {
		return fmt.Errorf("%w: %s, on the link, is at term %d while %s leads at term %d", errLeaderDisturbed, c.nodes[w.node].name, fst.Raft.Term, c.nodes[was.idx].name, was.term)
	}
	return nil
}

// onewayFollowerDeaf: the leader cannot reach a follower (the follower
// does not hear the leader; the leader hears it). The follower campaigns;
// pre-vote and the others' stickiness must keep the leader, during the
// fault and after the heal.
func onewayFollowerDeaf(c *chaosCluster, rng *mrand.Rand) error {
	return onewayWithLeader(c, rng, true)
}

// onewayLeaderDeaf: a follower cannot reach the leader (the leader does
// not hear it; it hears the leader): its forwarded writes fail, and
// nothing else may change.
func onewayLeaderDeaf(c *chaosCluster, rng *mrand.Rand) error {
	return onewayWithLeader(c, rng, false)
}

// onewayWithLeader cuts one direction of the link between the leader and
// a follower (leader → follower when followerDeaf, else follower →
// leader), and checks that the follower never runs ahead of the leader's
// term, during the fault and until it follows again.
func onewayWithLeader(c *chaosCluster, rng *mrand.Rand, followerDeaf bool) error {
	was, err := c.leaderTerm()
	if err != nil {
		return err
	}
	// A follower the other fault of a pair has not taken (it may kill
	// or pause its own), claimed for this one.
	f, err := c.pickFollower(was.idx, rng)
	if err != nil {
		return err
	}
	edge := [2]int{f, was.idx}
	if followerDeaf {
		edge = [2]int{was.idx, f}
	}
	w := &leaderWatch{c: c, was: was, node: f}
	if err := c.oneWayLinks([][2]int{edge}, holdFor(rng)+time.Second, w.check); err != nil {
		return err
	}
	return c.afterOneWay(f, w.check)
}

// afterOneWay waits, once healed, until node f follows a leader again,
// checking watch meanwhile.
func (c *chaosCluster) afterOneWay(f int, watch func() error) error {
	var werr error
	err := waitUntil(30*time.Second, c.nodes[f].name+" following the leader again", func() (bool, string) {
		if werr = watch(); werr != nil {
			return true, ""
		}
		st, err := c.nodes[f].status()
		if err != nil {
			return false, err.Error()
		}
		return st.Leader.NodeID != "" && !st.IsLeader, "it sees leader " + st.Leader.NodeID
	})
	return errors.Join(werr, err)
}

// onewayRandom cuts one to four random directed links at once; no
// stability is asserted (the leader may lose its quorum's ears), only the
// cycle's checks.
func onewayRandom(c *chaosCluster, rng *mrand.Rand) error {
	n := len(c.nodes)
	seen := map[[2]int]bool{}
	var edges [][2]int
	for range 1 + rng.IntN(4) {
		a := rng.IntN(n)
		b := (a + 1 + rng.IntN(n-1)) % n
		if !seen[[2]int{a, b}] {
			seen[[2]int{a, b}] = true
			edges = append(edges, [2]int{a, b})
		}
	}
	var desc []string
	for _, e := range edges {
		desc = append(desc, c.nodes[e[0]].name+"↛"+c.nodes[e[1]].name)
	}
	c.t.Logf("one-way links: %s", strings.Join(desc, " "))
	return c.oneWayLinks(edges, holdFor(rng)+time.Second, nil)
}

// ---- snapshot catch-up ----

var (
	compactedTo       = regexp.MustCompile(`msg="compacting logs".* to=(\d+)`)
	installedSnapshot = regexp.MustCompile(`msg="Installed remote snapshot"`)
)

// logSize is the length of the log at path (0 if it cannot be read).
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince is the log at path from byte from on.
func logSince(path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < from {
		return ""
	}
	return string(b[from:])
}

// maxCompacted is the highest index raft says it compacted its log to in
// text, or 0.
func maxCompacted(text string) uint64 {
	var top uint64
	for _, m := range compactedTo.FindAllStringSubmatch(text, -1) {
		if v, err := strconv.ParseUint(m[1], 10, 64); err == nil && v > top {
			top = v
		}
	}
	return top
}

// snapshotCatchUp cuts a follower off (a partition, or a pause without
// namespaces), writes through the leader until the leader has snapshotted
// and compacted its log past everything the follower could hold, heals
// while the workload goes on, and checks that the follower installed a
// snapshot and caught up.
func snapshotCatchUp(c *chaosCluster, rng *mrand.Rand) error {
	fi, err := c.follower(rng)
	if err != nil {
		return err
	}
	f := c.nodes[fi]
	heal := func() error { return f.signal(syscall.SIGCONT) }
	if c.hosts != nil {
		err = c.hosts.partition([][]int{{fi}, others(len(c.nodes), fi)})
		heal = c.hosts.heal
	} else {
		err = f.signal(syscall.SIGSTOP)
	}
	if err != nil {
		return errors.Join(err, heal())
	}
	healed := false
	defer func() {
		if !healed {
			_ = heal()
		}
	}()
	// Everything the follower holds is at most what the leader held once
	// the follower was cut off.
	was, err := c.leaderTerm()
	if err != nil {
		return err
	}
	lst, err := c.nodes[was.idx].status()
	if err != nil {
		return err
	}
	bound := lst.Raft.LastIndex
	from := map[int]int64{}
	for _, n := range c.nodes {
		from[n.idx] = logSize(n.log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	writes := 0
	err = waitUntil(60*time.Second, "the leader compacting its log past "+f.name, func() (bool, string) {
		l, err := c.leaderTerm()
		if err != nil || l.idx == fi {
			return false, fmt.Sprint("no leader in the majority: ", err)
		}
		if got := maxCompacted(logSince(c.nodes[l.idx].log, from[l.idx])); got > bound {
			return true, ""
		} else {
			for range 8 {
				if _, err := c.nodes[l.idx].client.RotateJoinToken(ctx, "worker"); err == nil {
					writes++
				}
			}
			return false, fmt.Sprintf("%s compacted to %d; %s may hold up to %d", c.nodes[l.idx].name, got, f.name, bound)
		}
	})
	if err != nil {
		return err
	}
	hold(holdFor(rng) / 2)
	at := logSize(f.log)
	healed = true
	if err := heal(); err != nil {
		return err
	}
	err = waitUntil(60*time.Second, f.name+" installing a snapshot", func() (bool, string) {
		return installedSnapshot.MatchString(logSince(f.log, at)), "no \"Installed remote snapshot\" in its log since the heal"
	})
	if err != nil {
		return err
	}
	l, err := c.leaderTerm()
	if err != nil {
		return err
	}
	lst, err = c.nodes[l.idx].status()
	if err != nil {
		return err
	}
	target := lst.Raft.CommitIndex
	err = waitUntil(60*time.Second, f.name+" catching up", func() (bool, string) {
		st, err := f.status()
		if err != nil {
			return false, err.Error()
		}
		return st.Raft.AppliedIndex >= target, fmt.Sprintf("applied %d of %d", st.Raft.AppliedIndex, target)
	})
	if err == nil {
		c.t.Logf("snapshot catch-up: %s was cut off at ≤%d; %d filler writes until the leader compacted past it; it installed a snapshot and applied %d", f.name, bound, writes, target)
	}
	return err
}

// ---- slow disk ----

// writeProbe makes sequential writes (join-token rotations, outside the
// checked model) through client for d and returns their latencies and
// how many failed.
func writeProbe(client *api.Client, d time.Duration) ([]time.Duration, int) {
	var lat []time.Duration
	failed := 0
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		began := time.Now()
		_, err := client.RotateJoinToken(ctx, "worker")
		cancel()
		if err != nil {
			failed++
			continue
		}
		lat = append(lat, time.Since(began))
	}
	return lat, failed
}

func latencies(lat []time.Duration) string {
	if len(lat) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("p50 %s p90 %s max %s", s[len(s)/2].Round(time.Millisecond), s[len(s)*9/10].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// slowDiskHandover bounds how long a leader whose disk is slow may keep
// leading while the fault runs alone: its log-sync median must turn slow
// (10 s window), three probes 2 s apart must agree, and the transfer
// must complete (manager/slowdisk.go).
const slowDiskHandover = 45 * time.Second

// slowDiskLeader makes every fsync of the leader's disk wait tens of
// milliseconds. The cluster must keep acknowledging writes, and the
// leader must hand leadership to a manager with a fast disk: alone,
// within slowDiskHandover; in a pair, whose other fault may take the
// fast managers a majority needs, only as far as its hold allows (then
// it is logged). Sequential writes through another node are timed
// before, while the slow leader still leads, and after the handover
// with the old leader's disk still slow.
func slowDiskLeader(c *chaosCluster, rng *mrand.Rand) error {
	was, err := c.leaderTerm()
	if err != nil {
		return err
	}
	c.claim(was.idx)
	n := c.nodes[was.idx]
	probe := c.nodes[(was.idx+1)%len(c.nodes)]
	delay := time.Duration(20+rng.IntN(60)) * time.Millisecond
	limit := slowDiskHandover
	if c.owner != "" {
		limit = 2*time.Second + holdFor(rng)
	}
	before, bfail := writeProbe(probe.client, time.Second)
	n.pfs.SetSyncDelay(delay)
	slowed := time.Now()
	var during, after []time.Duration
	var dfail, afail int
	var took time.Duration
	moved := false
	for !moved && time.Since(slowed) < limit {
		lat, f := writeProbe(probe.client, time.Second)
		during, dfail = append(during, lat...), dfail+f
		if now, err := c.leaderTerm(); err == nil && now.id != was.id {
			moved, took = true, time.Since(slowed)
		}
	}
	if moved {
		after, afail = writeProbe(probe.client, 2*time.Second)
	}
	n.pfs.SetSyncDelay(0)
	c.t.Logf("slow disk: %s led (term %d) with every fsync %s slower; writes through %s: before %d ok %d failed (%s); slow leader %d ok %d failed (%s); handed over: %v after %s; after the handover %d ok %d failed (%s)",
		n.name, was.term, delay, probe.name, len(before), bfail, latencies(before), len(during), dfail, latencies(during), moved, took.Round(time.Millisecond), len(after), afail, latencies(after))
	if len(during)+len(after) == 0 {
		return fmt.Errorf("no write was acknowledged while %s's disk was slow (%d failed)", n.name, dfail+afail)
	}
	if !moved && c.owner == "" {
		return fmt.Errorf("%s, whose every fsync was %s slower, still led after %s", n.name, delay, limit)
	}
	return nil
}

// ---- key rotations ----

// keyRotationInterval is the data-plane key rotation interval the
// rotate-keys fault sets (the minimum): from then on, for the rest of
// the run, data-plane keys rotate every 10 s under every other fault.
const keyRotationInterval = "10s"

// primaryKeys returns the primary key ID of each data-plane subsystem.
func primaryKeys(client *api.Client) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ks, err := client.Keys(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, k := range ks {
		if k.Primary {
			out[k.Subsystem] = k.KeyID
		}
	}
	return out, nil
}

// rotateKeys sets data-plane keys to rotate every 10 s and rotates the
// unlock key (every manager re-wraps its keys and rotates its raft DEK)
// while a follower is paused; it checks that every manager rotated its
// DEK (the paused one once it runs again) and that the data-plane keys
// rotated during the fault.
func rotateKeys(c *chaosCluster, rng *mrand.Rand) error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	from := map[int]int64{}
	for _, n := range c.nodes {
		from[n.idx] = logSize(n.log)
	}
	keysBefore, err := primaryKeys(c.nodes[l].client)
	if err != nil {
		return err
	}
	interval := keyRotationInterval
	err = waitUntil(30*time.Second, "the key rotation interval set", func() (bool, string) {
		l, err := c.leader()
		if err != nil {
			return false, err.Error()
		}
		_, err = c.nodes[l].client.Update(ctx, api.UpdateRequest{KeyRotation: &interval})
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		return err
	}
	fi, err := c.follower(rng)
	if err != nil {
		return err
	}
	f := c.nodes[fi]
	if err := f.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	paused := true
	defer func() {
		if paused {
			_ = f.signal(syscall.SIGCONT)
		}
	}()
	if l, err = c.leader(); err != nil {
		return err
	}
	old := c.keys[len(c.keys)-1]
	_, rerr := c.nodes[l].client.RotateUnlockKey(ctx, api.RotateUnlockKeyRequest{})
	var key string
	err = waitUntil(30*time.Second, "the new unlock key", func() (bool, string) {
		l, err := c.leader()
		if err != nil {
			return false, err.Error()
		}
		k, err := c.nodes[l].client.UnlockKey(ctx)
		if err != nil {
			return false, err.Error()
		}
		key = k.UnlockKey
		return key != old, "still the old one (rotate: " + fmt.Sprint(rerr) + ")"
	})
	if err != nil {
		return err
	}
	c.keys = append(c.keys, key)
	hold(holdFor(rng))
	paused = false
	if err := f.signal(syscall.SIGCONT); err != nil {
		return err
	}
	err = waitUntil(60*time.Second, "every manager rotating its raft DEK", func() (bool, string) {
		for _, n := range c.nodes {
			if !strings.Contains(logSince(n.log, from[n.idx]), `msg="raft DEK rotated"`) {
				return false, n.name + " has not"
			}
		}
		return true, ""
	})
	if err != nil {
		return err
	}
	return waitUntil(30*time.Second, "the data-plane keys rotating", func() (bool, string) {
		l, err := c.leader()
		if err != nil {
			return false, err.Error()
		}
		now, err := primaryKeys(c.nodes[l].client)
		if err != nil {
			return false, err.Error()
		}
		for sub, id := range now {
			if keysBefore[sub] == id {
				return false, sub + " still has primary " + id
			}
		}
		return len(now) > 0, "no data-plane keys"
	})
}

// inNetns runs fn on an OS thread inside network namespace ns: sockets
// fn opens belong to ns for their whole life.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked and so dies with the goroutine:
		// it never goes back to the pool in the wrong namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// echo serves ln: every connection gets back what it sends.
func echo(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			_, _ = io.Copy(conn, conn)
		}()
	}
}

// roundTrip writes a line on conn and reads it back within a second.
func roundTrip(conn net.Conn) error {
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err := io.ReadFull(conn, buf)
	return err
}

// TestOneWayLink checks what the one-way faults rely on: with node 0 cut
// from node 1, node 0's new connections to node 1's port fail and its
// established one stalls, node 1's connections to node 0 work, and
// removing the rules restores node 0's dials.
func TestOneWayLink(t *testing.T) {
	if why := netnsUnavailable(); why != "" {
		t.Skip(why)
	}
	h := newNetHosts(t, 2)
	var lns []net.Listener
	for i := range 2 {
		err := inNetns(h.ns[i], func() error {
			ln, err := net.Listen("tcp", nodeIP(i)+":4242")
			if err == nil {
				lns = append(lns, ln)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lns[i].Close() })
		go echo(lns[i])
	}
	dial := func(from, to int) (net.Conn, error) {
		var conn net.Conn
		err := inNetns(h.ns[from], func() error {
			var err error
			conn, err = net.DialTimeout("tcp", nodeIP(to)+":4242", 2*time.Second)
			return err
		})
		return conn, err
	}
	est, err := dial(0, 1)
	if err != nil {
		t.Fatalf("dial n0→n1 before the cut: %v", err)
	}
	defer est.Close()
	if err := roundTrip(est); err != nil {
		t.Fatalf("n0→n1 before the cut: %v", err)
	}
	undo, err := h.oneWay(0, 1, []hostPort{{"tcp", 4242}})
	if err != nil {
		t.Fatal(errors.Join(err, undo()))
	}
	if conn, err := dial(0, 1); err == nil {
		conn.Close()
		t.Fatal("n0 dialed n1 through the cut; want its dial refused")
	}
	if err := roundTrip(est); err == nil {
		t.Fatal("n0's established connection to n1 still carries data; want it stalled")
	}
	back, err := dial(1, 0)
	if err != nil {
		t.Fatalf("n1 dials n0 across the cut: %v; want it to work", err)
	}
	defer back.Close()
	if err := roundTrip(back); err != nil {
		t.Fatalf("n1→n0 across the cut: %v; want it to work", err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	healed, err := dial(0, 1)
	if err != nil {
		t.Fatalf("dial n0→n1 after the heal: %v", err)
	}
	defer healed.Close()
	if err := roundTrip(healed); err != nil {
		t.Fatalf("n0→n1 after the heal: %v", err)
	}
}

// TestFlipNewestEntryHitsEveryCopy: when raft.db holds the newest entry's
// bytes twice (a freed page keeps bolt's old copy), flip-raft-byte must
// still damage the copy bolt reads. The soak hit it with the chaos
// nodes' small compacted logs, and the fault gave up, leaving its node
// down.
func TestFlipNewestEntryHitsEveryCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	newest := bytes.Repeat([]byte("sealed-entry-"), 20)
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("logs"))
		if err != nil {
			return err
		}
		for i := byte(1); i <= 3; i++ {
			v := newest
			if i < 3 {
				v = bytes.Repeat([]byte{'a' + i}, 100)
			}
			if err := b.Put([]byte{0, 0, 0, 0, 0, 0, 0, i}, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// A stale copy of the entry before the live one, as in a freed page:
	// write it into the file's first free space (the meta pages' tail).
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(raw, newest) != 1 {
		t.Fatalf("the fresh file holds the entry %d times; want once", bytes.Count(raw, newest))
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt(newest, 1024); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if _, err := flipNewestEntry(path, mrand.New(mrand.NewPCG(1, 2))); err != nil {
		t.Fatalf("flip with two copies: %v", err)
	}
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		_, v := tx.Bucket([]byte("logs")).Cursor().Last()
		if bytes.Equal(v, newest) {
			t.Error("the entry bolt reads is intact; want one byte flipped")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// joinAtSetup joins d while the chaos cluster is built, trying again
// while the cluster has no leader: on a starved machine (load 30 on two
// cores) an election can fall between two joins, and the join is refused
// before it does anything.
func (c *chaosCluster) joinAtSetup(d *chaosNode, addr string) error {
	var last error
	err := waitUntil(60*time.Second, d.name+" joining", func() (bool, string) {
		last = c.join(d, addr)
		if last == nil {
			return true, ""
		}
		return !strings.Contains(last.Error(), "no leader"), last.Error()
	})
	if last != nil {
		return last
	}
	return err
}
