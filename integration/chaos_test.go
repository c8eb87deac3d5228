package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/powerfs"
	"github.com/holdfast/holdfast/internal/testutil"
)

// soak runs TestChaosSoak for this long, with randomized faults.
// HOLDFAST_SOAK (a Go duration) does the same.
var soak = flag.Duration("soak", 0, "run the chaos soak for this long (e.g. 30m); also HOLDFAST_SOAK")

func soakDuration(t *testing.T) time.Duration {
	if *soak > 0 {
		return *soak
	}
	if v := os.Getenv("HOLDFAST_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("HOLDFAST_SOAK=%q: %v", v, err)
		}
		return d
	}
	return 0
}

// quickSeed is the quick run's fixed seed; HOLDFAST_CHAOS_SEED replays
// another.
const quickSeed = 20260801

// chaosNode is one daemon of a chaos cluster, in its own network
// namespace (ns) or on loopback (ns "").
type chaosNode struct {
	*daemon
	idx   int
	ns    string
	id    string
	tmpfs bool
	// pfs is the power-cut filesystem the data dir is mounted on (nil
	// where FUSE cannot be mounted); its backing tree is in backing.
	pfs     *powerfs.FS
	backing string
}

// waitUntil checks cond at each tick until it holds; on timeout it returns
// an error with cond's last reason.
func waitUntil(timeout time.Duration, what string, cond func() (bool, string)) error {
	return testutil.Poll(timeout, func() (bool, string) {
		ok, why := cond()
		return ok, "waiting for " + what + ": " + why
	})
}

// hold keeps a fault in place for d: a schedule, not a wait for a
// condition.
func hold(d time.Duration) { <-time.After(d) }

// start runs the daemon (inside its namespace) and waits for its control
// socket; it returns an error if the daemon exits first.
func (n *chaosNode) start() error {
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- start %s ----\n", time.Now().Format(time.RFC3339Nano))
	args := []string{"daemon", "--data-dir", n.dir, "--socket", n.sock, "--listen-addr", n.listen, "--advertise-addr", n.listen, "--gossip-addr", gossipAddrFor(n.listen), "--log-level", "debug"}
	bin, env := chaosBinary()
	if n.bin != "" {
		bin = n.bin // a nemesis's test build (the clock skew's)
	}
	if n.ns != "" {
		// nsenter enters only the network namespace: ip netns exec would
		// also copy the mounts into a new mount namespace, where a copy of
		// another node's power-cut mount outlives its unmount.
		n.cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.ns, "--", bin}, args...)...)
	} else {
		n.cmd = exec.Command(bin, args...)
	}
	n.cmd.Env = append(append(os.Environ(), env...), n.env...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		n.cmd = nil
		return err
	}
	n.exited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(n.cmd, n.exited)
	var exitErr error
	err = waitUntil(30*time.Second, n.name+" control socket", func() (bool, string) {
		select {
		case err := <-n.exited:
			exitErr = fmt.Errorf("%s exited at start: %v", n.name, err)
			return true, ""
		default:
		}
		_, err := n.client.Status(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	if exitErr != nil {
		n.cmd = nil
		return exitErr
	}
	return err
}

// signal sends sig to the daemon process (nsenter execs it, so the pid
// is the daemon's).
func (n *chaosNode) signal(sig os.Signal) error {
	if n.cmd == nil {
		return fmt.Errorf("%s is not running", n.name)
	}
	return n.cmd.Process.Signal(sig)
}

// chaosCluster is an autolocked cluster of chaos nodes.
type chaosCluster struct {
	t     testing.TB
	hosts *netHosts // nil on loopback
	nodes []*chaosNode
	// keys are the unlock keys the cluster has had, oldest first.
	keys         []string
	managerToken string
	// noPowerCut says why data dirs are not on power-cut filesystems, or
	// "".
	noPowerCut string
	// nem and owner are the nemesis runner's shared state (claims, the
	// spare) and the fault this view of the cluster runs for (combined_test.go).
	nem   *nemesisState
	owner string
}

func newChaosCluster(t testing.TB, n int, hosts *netHosts, tmpfs bool) *chaosCluster {
	t.Helper()
	c := &chaosCluster{t: t, hosts: hosts, noPowerCut: powerCutUnavailable()}
	for i := range n {
		c.nodes = append(c.nodes, c.newNode(i, tmpfs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	init, err := c.nodes[0].client.Init(ctx, api.InitRequest{Autolock: true})
	if err != nil {
		t.Fatalf("init --autolock: %v", err)
	}
	c.keys = []string{init.UnlockKey}
	c.managerToken = init.ManagerToken
	c.nodes[0].id = init.NodeID
	for _, d := range c.nodes[1:] {
		if err := c.joinAtSetup(d, init.Addr); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *chaosCluster) newNode(i int, tmpfs bool) *chaosNode {
	t := c.t
	dir := t.TempDir()
	// The data dir is a power-cut filesystem over a backing directory
	// where FUSE mounts, else the directory itself; the tmpfs (if any)
	// holds the data.
	var backing string
	data := dir
	if c.noPowerCut == "" {
		backing = t.TempDir()
		data = backing
	}
	if tmpfs {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", data).CombinedOutput(); err != nil {
			t.Fatalf("mount a tmpfs on %s: %v: %s", data, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", "-l", data).Run() })
	}
	var pfs *powerfs.FS
	if backing != "" {
		var err error
		if pfs, err = mountPowerFS(t, dir, backing); err != nil {
			t.Fatal(err)
		}
	}
	sockDir, err := os.MkdirTemp("", "hfc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	n := &chaosNode{idx: i, tmpfs: tmpfs, pfs: pfs, backing: backing, daemon: &daemon{tb: t, name: fmt.Sprintf("n%d", i), dir: dir, sock: filepath.Join(sockDir, "s"), log: filepath.Join(t.TempDir(), "daemon.log")}}
	if c.hosts != nil {
		n.ns = c.hosts.ns[i]
		n.listen = nodeIP(i) + ":4242"
	} else {
		n.listen = freePort(t)
	}
	n.client = api.NewUnixClient(n.sock)
	skewableClock(t, n) // the test build, whose clock the clock-skew fault moves
	t.Cleanup(func() {
		if n.cmd != nil {
			_ = n.cmd.Process.Signal(os.Signal(sigCont))
		}
		n.kill()
	})
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// join joins d as a manager and waits until its keys are wrapped under the
// cluster's unlock key, so that a restart finds it locked. A refused join
// is tried again for a minute, as an operator would: the manager at addr
// may be the one whose clock the other fault of a pair moved, and it
// refuses to issue certificates (clock_skew) until its clock is right.
func (c *chaosCluster) join(d *chaosNode, addr string) error {
	err := waitUntil(time.Minute, d.name+" joined through "+addr, func() (bool, string) {
		if st, err := d.status(); err == nil && st.State != api.StateUninitialized {
			return true, ""
		}
		out, errOut, code := d.cli("", "join", "--token", c.managerToken, addr)
		return code == 0, fmt.Sprintf("join %s: exit %d: %s%s", d.name, code, out, errOut)
	})
	if err != nil {
		return err
	}
	st, err := d.status()
	if err != nil {
		return err
	}
	d.id = st.NodeID
	return waitUntil(30*time.Second, d.name+"'s keys wrapped", func() (bool, string) {
		return wrappedOnDisk(d.daemon), "not yet"
	})
}

func (c *chaosCluster) logs() map[string]string {
	m := map[string]string{}
	for _, n := range c.nodes {
		m[n.name] = n.log
	}
	c.spareLog(m)
	return m
}

// unlock unlocks n if it is locked, trying the newest key first.
func (c *chaosCluster) unlock(n *chaosNode) error {
	st, err := n.status()
	if err != nil {
		return err
	}
	if st.State != api.StateLocked {
		return nil
	}
	var errs []string
	for i := len(c.keys) - 1; i >= 0; i-- {
		if err := c.unlockWith(n, c.keys[i]); err == nil {
			return nil
		} else {
			errs = append(errs, err.Error())
		}
	}
	return fmt.Errorf("unlock %s: %s", n.name, strings.Join(errs, "; "))
}

func (c *chaosCluster) unlockWith(n *chaosNode, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := n.client.Unlock(ctx, api.UnlockRequest{Key: key})
	if apiStatus(err) == http.StatusConflict { // not locked
		return nil
	}
	return err
}

// waitReady waits until every node runs, is unlocked and ready, all agree
// on one leader, and every manager is reachable.
func (c *chaosCluster) waitReady(timeout time.Duration) error {
	return waitUntil(timeout, "every node ready with one leader", func() (bool, string) {
		leader := ""
		for _, n := range c.nodes {
			if !n.running() {
				return false, n.name + " is not running"
			}
			st, err := n.status()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.name, err)
			}
			if st.State == api.StateLocked {
				if err := c.unlock(n); err != nil {
					return false, err.Error()
				}
				return false, n.name + " was locked"
			}
			if st.State != api.StateReady {
				return false, n.name + " is " + st.State
			}
			if st.Leader.NodeID == "" || (leader != "" && st.Leader.NodeID != leader) {
				return false, fmt.Sprintf("%s sees leader %q, others %q", n.name, st.Leader.NodeID, leader)
			}
			leader = st.Leader.NodeID
			if len(st.Managers) != len(c.nodes) {
				return false, fmt.Sprintf("%s sees %d managers", n.name, len(st.Managers))
			}
			for _, m := range st.Managers {
				if !m.Reachable {
					return false, fmt.Sprintf("%s sees %s unreachable", n.name, m.NodeID)
				}
			}
		}
		return true, ""
	})
}

// leader returns the index of the node that leads, waiting for one.
func (c *chaosCluster) leader() (int, error) {
	idx := -1
	err := waitUntil(30*time.Second, "a leader", func() (bool, string) {
		for _, n := range c.nodes {
			if c.mayAsk(n) {
				if st, err := n.status(); err == nil && st.IsLeader {
					idx = n.idx
					return true, ""
				}
			}
		}
		return false, "none"
	})
	c.claim(idx)
	return idx, err
}

// follower returns a node other than the leader, chosen by rng.
func (c *chaosCluster) follower(rng *mrand.Rand) (int, error) {
	l, err := c.leader()
	if err != nil {
		return 0, err
	}
	return c.pickFollower(l, rng)
}

// converge waits until every manager has applied the same index and lists
// the same secrets.
func (c *chaosCluster) converge(timeout time.Duration) error {
	return waitUntil(timeout, "replicas to converge", func() (bool, string) {
		var idx []uint64
		var lists []string
		for _, n := range c.nodes {
			st, err := n.status()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.name, err)
			}
			idx = append(idx, st.Raft.AppliedIndex)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ls, err := n.client.Secrets(ctx)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: secret ls: %v", n.name, err)
			}
			sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
			var b strings.Builder
			for _, m := range ls {
				fmt.Fprintf(&b, "%s %s {%s} %s\n", m.Name, m.ID, labelString(m.Labels), m.Digest)
			}
			lists = append(lists, b.String())
		}
		for i := range idx {
			if idx[i] != idx[0] {
				return false, fmt.Sprintf("applied indexes %v", idx)
			}
			if lists[i] != lists[0] {
				return false, fmt.Sprintf("%s lists other secrets than %s", c.nodes[i].name, c.nodes[0].name)
			}
		}
		return true, ""
	})
}

// finalReads reads every name on every node and records the reads.
func (c *chaosCluster) finalReads(h *history, names []string) error {
	for _, n := range c.nodes {
		client := h.newClient()
		for _, name := range names {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			call := h.now()
			m, err := n.client.Secret(ctx, name)
			ret := h.now()
			cancel()
			in := secretInput{Op: opInspect, Name: name}
			switch {
			case err == nil:
				h.add(client, n.name, in, call, ret, secretOutput{OK: true, ID: m.ID, Labels: labelString(m.Labels)})
			case apiStatus(err) == http.StatusNotFound:
				h.add(client, n.name, in, call, ret, secretOutput{})
			default:
				return fmt.Errorf("final read of %s on %s: %v", name, n.name, err)
			}
		}
	}
	return nil
}

// canaryPatterns are the forms in which a canary must never be found on
// disk: raw, base64 (standard and URL, aligned as when it is the whole
// data) and hex.
func canaryPatterns(canary []byte) [][]byte {
	cut := func(s string) []byte { return []byte(s[:len(canary)/3*4]) }
	return [][]byte{
		canary,
		cut(base64.StdEncoding.EncodeToString(canary)),
		cut(base64.URLEncoding.EncodeToString(canary)),
		[]byte(hex.EncodeToString(canary)),
	}
}

// scanCanary looks for the canary in every file of every data dir and in
// every log.
func (c *chaosCluster) scanCanary(canary []byte) error {
	pats := canaryPatterns(canary)
	var found []string
	check := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		for _, p := range pats {
			if bytes.Contains(b, p) {
				found = append(found, path)
				return
			}
		}
	}
	for _, n := range c.nodes {
		_ = filepath.WalkDir(n.dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				check(path)
			}
			return nil
		})
		check(n.log)
	}
	if len(found) > 0 {
		return fmt.Errorf("the canary secret's data is on disk: %s", strings.Join(found, ", "))
	}
	return nil
}

// cycleReport is one cycle's counts.
type cycleReport struct {
	ops, recorded, unknown, dropped int
	result                          porcupine.CheckResult
}

// cycle runs the workload on fresh names while f does its fault, then
// checks everything; it fails the test (with the failure directory named)
// on any problem.
func (c *chaosCluster) cycle(t testing.TB, seed uint64, no int, f fault, work time.Duration, canary []byte) cycleReport {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(seed, uint64(no)))
	var names []string
	for k := range 5 {
		names = append(names, fmt.Sprintf("c%03d-k%d", no, k))
	}
	h := newHistory()
	var clients []*api.Client
	var nodeNames []string
	for _, n := range c.nodes {
		clients = append(clients, n.client)
		nodeNames = append(nodeNames, n.name)
	}
	w := &workload{h: h, names: names, canary: canary, clients: clients, nodes: nodeNames, seed: seed ^ uint64(no)<<32, workers: 6, timeout: 3 * time.Second}
	w.start()
	hold(work / 3)
	faultErr := f.run(c, rng)
	hold(work / 3)
	w.halt()

	var problems []string
	if faultErr != nil {
		problems = append(problems, "fault "+f.name+": "+faultErr.Error())
	}
	healed := time.Now()
	if err := c.waitReady(90 * time.Second); err != nil {
		problems = append(problems, "after heal: "+err.Error())
	}
	if took := time.Since(healed); took > 10*time.Second {
		t.Logf("cycle %d (%s): the cluster took %s to be ready after the heal", no, f.name, took.Round(time.Millisecond))
	}
	finalFrom := h.now()
	if len(problems) == 0 {
		if err := c.finalReads(h, names); err != nil {
			problems = append(problems, err.Error())
		}
		if err := c.converge(30 * time.Second); err != nil {
			problems = append(problems, err.Error())
		}
	}
	ops := h.operations()
	res := checkHistory(ops, 90*time.Second)
	switch res.result {
	case porcupine.Illegal:
		problems = append(problems, "the history is not linearizable")
	case porcupine.Unknown:
		t.Logf("cycle %d (%s): the linearizability check timed out; counted as unknown", no, f.name)
	}
	if lost := lostWrites(ops, finalFrom); len(lost) > 0 {
		problems = append(problems, "acknowledged writes lost: "+strings.Join(lost, "; "))
	}
	if err := c.scanCanary(canary); err != nil {
		problems = append(problems, err.Error())
	}
	rep := cycleReport{ops: int(w.ops.Load()), recorded: len(ops), unknown: h.unknown, dropped: h.dropped, result: res.result}
	if len(problems) > 0 {
		dir := failureDir(t.Name(), seed, fmt.Sprintf("cycle%d-%s", no, f.name))
		notes := fmt.Sprintf("seed %d cycle %d fault %s\n%s\n", seed, no, f.name, strings.Join(problems, "\n"))
		saveFailure(dir, ops, &res, c.logs(), notes)
		t.Fatalf("seed %d, cycle %d, fault %s:\n  %s\nhistory, porcupine visualization and node logs in %s",
			seed, no, f.name, strings.Join(problems, "\n  "), dir)
	}
	return rep
}

func newCanary(t testing.TB) []byte {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte("canary-" + hex.EncodeToString(b))
}

// chaosSetup makes the cluster: five nodes in namespaces with tmpfs data
// dirs when root can, else three on loopback. It returns why namespaces
// (and tmpfs) are unavailable, or "".
func chaosSetup(t *testing.T) (*chaosCluster, string) {
	if why := powerCutUnavailable(); why != "" {
		t.Logf("data dirs on plain directories, power cuts skipped: %s", why)
	}
	why := netnsUnavailable()
	if why != "" {
		t.Logf("running on loopback: %s", why)
		return newChaosCluster(t, 3, nil, false), why
	}
	hosts := newNetHosts(t, 5)
	return newChaosCluster(t, 5, hosts, true), ""
}

// The quick run: every fault once, in a fixed order, with a fixed seed.
func TestChaosQuick(t *testing.T) {
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
	began := time.Now()
	c, noNet := chaosSetup(t)
	canary := newCanary(t)
	var total cycleReport
	for i, f := range faults() {
		ok := t.Run(f.name, func(t *testing.T) {
			if why := f.unavailable(c, noNet); why != "" {
				t.Skip(why)
			}
			rep := c.cycle(t, seed, i, f, 3*time.Second, canary)
			t.Logf("%d ops (%d recorded, %d unknown, %d failed and dropped); linearizable: %s", rep.ops, rep.recorded, rep.unknown, rep.dropped, rep.result)
			total.ops += rep.ops
			total.unknown += rep.unknown
		})
		if !ok {
			break
		}
	}
	t.Logf("quick chaos run: seed %d, %d ops, %d unknown, %s", seed, total.ops, total.unknown, time.Since(began).Round(time.Second))
}

// The soak: randomized faults for -soak / HOLDFAST_SOAK, seed from the
// clock (printed; HOLDFAST_CHAOS_SEED replays it).
func TestChaosSoak(t *testing.T) {
	d := soakDuration(t)
	if d == 0 {
		t.Skip("no soak requested: run with -soak 30m or HOLDFAST_SOAK=30m")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("HOLDFAST_CHAOS_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	t.Logf("chaos soak for %s, seed %d (replay with HOLDFAST_CHAOS_SEED=%d)", d, seed, seed)
	c, noNet := chaosSetup(t)
	canary := newCanary(t)
	var avail []fault
	for _, f := range faults() {
		if why := f.unavailable(c, noNet); why != "" {
			t.Logf("fault %s skipped: %s", f.name, why)
			continue
		}
		avail = append(avail, f)
	}
	rng := mrand.New(mrand.NewPCG(seed, 0))
	deadline := time.Now().Add(d)
	paired := pairs(avail) // combined_test.go
	var ops, recorded, unknown, cycles, pairCycles int
	tally := soakTally{}
	linearizable := "yes"
	var current fault
	summary := func() {
		t.Logf("SOAK SUMMARY: seed %d, %s, %d cycles (%d of them pairs of faults), %d ops (%d recorded, %d unknown); linearizable: %s\n%s",
			seed, d, cycles, pairCycles, ops, recorded, unknown, linearizable, strings.Join(tally.lines(), "\n"))
	}
	defer func() {
		if t.Failed() {
			linearizable = "FAILED (see above)"
			if current.name != "" {
				tally.fail(current)
			}
		}
		summary()
	}()
	for no := 0; time.Now().Before(deadline); no++ {
		f := pickFault(avail, paired, rng)
		current = f
		work := time.Duration(3+rng.IntN(8)) * time.Second
		rep := c.cycle(t, seed, no, f, work, canary)
		current = fault{}
		cycles++
		if strings.Contains(f.name, "+") {
			pairCycles++
		}
		tally.add(f, rep)
		ops += rep.ops
		recorded += rep.recorded
		unknown += rep.unknown
		if rep.result == porcupine.Unknown && linearizable == "yes" {
			linearizable = "yes (some checks timed out)"
		}
		t.Logf("cycle %d %s: %d ops, %d unknown, %s", no, f.name, rep.ops, rep.unknown, rep.result)
	}
}

var errNotRefused = errors.New("the node did not refuse its corrupted raft log")
