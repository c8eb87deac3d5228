package integration

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// Membership churn under load: while the workload writes, managers leave
// and join. One churn fault runs three steps in a random order:
//
//   - rejoin-same-address: a follower is removed with `node rm --force`
//     (killed first, or still running), wiped, and joins again as a new
//     manager at the same address: the case where a stale snapshot at a
//     reused address was once found;
//   - demote-promote: a follower is demoted to a worker (it leaves raft)
//     and promoted back;
//   - spare-join-leave: a spare node joins, either with the manager token
//     or as a worker promoted to manager, serves as a voter for a moment,
//     and leaves (demoted then removed, or removed with --force while it
//     runs); it is wiped for next time, so every join after its first is at
//     a reused address. In namespaces the spare has its own (a sixth
//     address, new to the cluster on its first join).
//
// No step removes a voter unless a majority of the voters left would
// still be reachable from the leader, not counting nodes the other fault
// of a pair acts on: a step waits for that, and is skipped (logged) if it
// does not come.

type churnStep struct {
	name string
	run  func(c *chaosCluster, rng *mrand.Rand) error
}

func churn(c *chaosCluster, rng *mrand.Rand) error {
	if err := c.ensureSpare(); err != nil {
		return err
	}
	steps := []churnStep{
		{"rejoin-same-address", rejoinSameAddress},
		{"demote-promote", demotePromote},
		{"spare-join-leave", spareJoinLeave},
	}
	rng.Shuffle(len(steps), func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
	for _, s := range steps {
		if err := s.run(c, rng); err != nil {
			return fmt.Errorf("churn step %s: %w", s.name, err)
		}
	}
	return nil
}

// ensureSpare makes the spare node (uninitialized, in its own namespace
// when there are namespaces) on first use. It runs on the test's
// goroutine: a failure to make it fails the test.
func (c *chaosCluster) ensureSpare() error {
	nem := c.nemesis()
	if nem.spare != nil {
		return nil
	}
	i := len(c.nodes)
	if c.hosts != nil {
		if err := c.hosts.addHost(i); err != nil {
			return err
		}
	}
	nem.spare = c.newNode(i, c.nodes[0].tmpfs)
	return nil
}

// addHost adds namespace i (which must be the next) to the bridge.
func (h *netHosts) addHost(i int) error {
	if i != len(h.ns) {
		return fmt.Errorf("add host %d: there are %d", i, len(h.ns))
	}
	ns := fmt.Sprintf("hf%s-%d", h.tag, i)
	host, peer := fmt.Sprintf("hfv%s%d", h.tag, i), fmt.Sprintf("hfp%s%d", h.tag, i)
	if err := ipCmd("netns", "add", ns); err != nil {
		return err
	}
	h.mu.Lock()
	h.ns = append(h.ns, ns)
	h.mu.Unlock()
	for _, args := range [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", host, "master", h.bridge},
		{"link", "set", host, "up"},
		{"link", "set", peer, "netns", ns},
		{"-n", ns, "link", "set", peer, "name", "eth0"},
		{"-n", ns, "addr", "add", nodeIP(i) + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	return nil
}

// churnLeader finds the leader among the nodes and the spare (which may
// lead while it is a manager).
func (c *chaosCluster) churnLeader() (*chaosNode, error) {
	var l *chaosNode
	cands := append([]*chaosNode(nil), c.nodes...)
	if c.nem != nil && c.nem.spare != nil {
		cands = append(cands, c.nem.spare)
	}
	err := waitUntil(60*time.Second, "a leader", func() (bool, string) {
		for _, n := range cands {
			if n.idx >= len(c.nodes) || c.mayAsk(n) {
				if st, err := n.status(); err == nil && st.IsLeader {
					l = n
					return true, ""
				}
			}
		}
		return false, "none"
	})
	if l != nil {
		c.claim(l.idx)
	}
	return l, err
}

// viaLeader calls fn on the leader until it succeeds or ends in an error
// done accepts (nil: none), for up to two minutes; a 503, a misdirected
// request (leadership moved) or a timeout is retried.
func (c *chaosCluster) viaLeader(what string, fn func(ctx context.Context, l *chaosNode) error, done func(error) bool) error {
	var last error
	err := waitUntil(2*time.Minute, what, func() (bool, string) {
		l, err := c.churnLeader()
		if err != nil {
			last = err
			return false, err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		last = fn(ctx, l)
		if last == nil || (done != nil && done(last)) {
			return true, ""
		}
		return false, fmt.Sprintf("%s on %s: %v", what, l.name, last)
	})
	if err != nil {
		return err
	}
	if last != nil && (done == nil || !done(last)) {
		return last
	}
	return nil
}

func notFound(err error) bool { return apiStatus(err) == http.StatusNotFound }

// byID is the node (or the spare) with that id, or nil.
func (c *chaosCluster) byID(id string) *chaosNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	if c.nem != nil && c.nem.spare != nil && c.nem.spare.id == id {
		return c.nem.spare
	}
	return nil
}

// waitSafeToRemove waits until removing the voter id leaves a majority
// of the remaining voters reachable from the leader, not counting nodes
// the other fault of a pair acts on. It returns false (and why) if that
// does not come within 30 s: the caller skips its step.
func (c *chaosCluster) waitSafeToRemove(id string) (bool, string) {
	var why string
	err := waitUntil(30*time.Second, "a safe quorum to remove "+id, func() (bool, string) {
		l, err := c.churnLeader()
		if err != nil {
			why = err.Error()
			return false, why
		}
		st, err := l.status()
		if err != nil {
			why = err.Error()
			return false, why
		}
		voters, live := 0, 0
		for _, m := range st.Managers {
			if !m.Voter {
				continue
			}
			voters++
			if m.NodeID == id || !m.Reachable {
				continue
			}
			if n := c.byID(m.NodeID); n != nil && c.claimedByOther(n.idx) {
				continue
			}
			live++
		}
		need := (voters-1)/2 + 1
		why = fmt.Sprintf("%d of %d voters would be live after removing %s; need %d", live, voters-1, id, need)
		return live >= need, why
	})
	return err == nil, why
}

// joinAs joins d with token through the leader, retrying while the
// cluster cannot answer (a partition, an election); a worker given no
// token joins with the worker token the leader holds at each try. As a
// manager, it waits until d's keys are wrapped under the unlock key.
func (c *chaosCluster) joinAs(d *chaosNode, role ca.Role, token string) error {
	var last string
	fresh := role == roleWorker && token == ""
	err := waitUntil(90*time.Second, d.name+" joined", func() (bool, string) {
		if st, err := d.status(); err == nil && st.State != api.StateUninitialized {
			d.id = st.NodeID
			return true, ""
		}
		l, err := c.churnLeader()
		if err != nil {
			return false, err.Error()
		}
		if fresh {
			// The worker token is read from the leader at each try: the
			// other fault of a pair may rotate it (slow-disk-leader and
			// snapshot-catch-up write by rotating it).
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t, err := l.client.JoinToken(ctx, roleWorker)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("worker token from %s: %v", l.name, err)
			}
			token = t.Token
		}
		out, errOut, code := d.cli("", "join", "--token", token, l.listen)
		last = fmt.Sprintf("join %s through %s: exit %d: %s%s", d.name, l.name, code, out, errOut)
		return false, last
	})
	if err != nil {
		return err
	}
	if role != roleManager {
		return nil
	}
	return waitUntil(30*time.Second, d.name+"'s keys wrapped", func() (bool, string) {
		return wrappedOnDisk(d.daemon), "not yet"
	})
}

const (
	roleManager = ca.Role("manager")
	roleWorker  = ca.Role("worker")
)

// waitRole waits until d says it has role and the leader counts it as a
// voter (a manager) or not at all (a worker).
func (c *chaosCluster) waitRole(d *chaosNode, role ca.Role) error {
	// A demoted manager that did not hear of its demotion (cut off, or a
	// loaded machine) learns it from another manager and then renews its
	// certificate, asking each manager in turn: give it two minutes.
	return waitUntil(2*time.Minute, fmt.Sprintf("%s to be a %s", d.name, role), func() (bool, string) {
		st, err := d.status()
		if err != nil {
			return false, err.Error()
		}
		if st.Role != role || st.State != api.StateReady {
			return false, fmt.Sprintf("%s is a %s, %s", d.name, st.Role, st.State)
		}
		l, err := c.churnLeader()
		if err != nil {
			return false, err.Error()
		}
		lst, err := l.status()
		if err != nil {
			return false, err.Error()
		}
		voter := false
		for _, m := range lst.Managers {
			voter = voter || (m.NodeID == d.id && m.Voter)
		}
		if voter != (role == roleManager) {
			return false, fmt.Sprintf("the leader %s counts %s as a voter: %v", l.name, d.name, voter)
		}
		return true, ""
	})
}

// removeForce removes id with `node rm --force` through the leader.
func (c *chaosCluster) removeForce(id string) error {
	return c.viaLeader("node rm --force "+id, func(ctx context.Context, l *chaosNode) error {
		return l.client.RemoveNode(ctx, id, true)
	}, notFound)
}

// rejoinSameAddress removes a follower with --force (down, or still
// running), wipes it and joins it again at the same address.
func rejoinSameAddress(c *chaosCluster, rng *mrand.Rand) error {
	fi, err := c.follower(rng)
	if err != nil {
		return err
	}
	f := c.nodes[fi]
	if ok, why := c.waitSafeToRemove(f.id); !ok {
		c.t.Logf("churn: rejoin-same-address of %s skipped: %s", f.name, why)
		return nil
	}
	running := rng.IntN(2) == 0
	if !running {
		f.kill()
	}
	if err := c.removeForce(f.id); err != nil {
		return err
	}
	f.kill()
	if err := wipe(f.dir); err != nil {
		return err
	}
	if err := f.start(); err != nil {
		return err
	}
	old := f.id
	if err := c.joinAs(f, roleManager, c.managerToken); err != nil {
		return err
	}
	c.t.Logf("churn: %s removed (%s), rejoined at its address %s as %s (was %s)", f.name, map[bool]string{true: "while running", false: "while down"}[running], f.listen, f.id, old)
	return c.waitRole(f, roleManager)
}

// demotePromote demotes a follower to a worker and promotes it back.
func demotePromote(c *chaosCluster, rng *mrand.Rand) error {
	fi, err := c.follower(rng)
	if err != nil {
		return err
	}
	f := c.nodes[fi]
	if ok, why := c.waitSafeToRemove(f.id); !ok {
		c.t.Logf("churn: demote-promote of %s skipped: %s", f.name, why)
		return nil
	}
	if err := c.viaLeader("node demote "+f.name, func(ctx context.Context, l *chaosNode) error {
		return l.client.Demote(ctx, f.id)
	}, nil); err != nil {
		return err
	}
	if err := c.waitRole(f, roleWorker); err != nil {
		return err
	}
	hold(holdFor(rng) / 2)
	if err := c.viaLeader("node promote "+f.name, func(ctx context.Context, l *chaosNode) error {
		return l.client.Promote(ctx, f.id)
	}, nil); err != nil {
		return err
	}
	c.t.Logf("churn: %s demoted and promoted", f.name)
	return c.waitRole(f, roleManager)
}

// spareJoinLeave joins the spare (with the manager token, or as a worker
// then promoted), holds, and removes it (demoted then removed, or removed
// with --force while it runs); then wipes and restarts it, uninitialized.
func spareJoinLeave(c *chaosCluster, _ *mrand.Rand) error {
	// The spare's choices go by its join count, not the seed, so that
	// over a few churns every way of joining and leaving is taken.
	s := c.nem.spare
	n := c.nem.spareJoins
	c.nem.spareJoins++
	addr := "a new address"
	if n > 0 {
		addr = "its reused address"
	}
	asWorker := n%2 == 1
	if asWorker {
		if err := c.joinAs(s, roleWorker, ""); err != nil {
			return err
		}
		if err := c.waitRole(s, roleWorker); err != nil {
			return err
		}
		if err := c.viaLeader("node promote "+s.name, func(ctx context.Context, l *chaosNode) error {
			return l.client.Promote(ctx, s.id)
		}, nil); err != nil {
			return err
		}
	} else if err := c.joinAs(s, roleManager, c.managerToken); err != nil {
		return err
	}
	if err := c.waitRole(s, roleManager); err != nil {
		return err
	}
	c.t.Logf("churn: spare %s joined at %s (%s) as %s, %s", s.name, s.listen, addr, s.id, map[bool]string{true: "a worker promoted", false: "a manager"}[asWorker])
	if ok, why := c.waitSafeToRemove(s.id); !ok {
		// It stays a manager until removed: the cluster must drop it
		// before the cycle's checks.
		return fmt.Errorf("the spare cannot be removed safely: %s", why)
	}
	if (n/2)%2 == 0 {
		if err := c.removeForce(s.id); err != nil {
			return err
		}
	} else {
		if err := c.viaLeader("node demote "+s.name, func(ctx context.Context, l *chaosNode) error {
			return l.client.Demote(ctx, s.id)
		}, nil); err != nil {
			return err
		}
		if err := c.waitRole(s, roleWorker); err != nil {
			return err
		}
		if err := c.viaLeader("node rm "+s.name, func(ctx context.Context, l *chaosNode) error {
			return l.client.RemoveNode(ctx, s.id, false)
		}, notFound); err != nil {
			return err
		}
	}
	if err := c.waitGone(s.id); err != nil {
		return err
	}
	s.kill()
	if err := wipe(s.dir); err != nil {
		return err
	}
	s.id = ""
	return s.start()
}

// waitGone waits until the leader lists no node id.
func (c *chaosCluster) waitGone(id string) error {
	return waitUntil(60*time.Second, id+" gone from node ls", func() (bool, string) {
		var ns []api.Node
		err := c.viaLeader("node ls", func(ctx context.Context, l *chaosNode) error {
			var err error
			ns, err = l.client.Nodes(ctx)
			return err
		}, nil)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range ns {
			if n.ID == id {
				return false, "still listed"
			}
		}
		return true, ""
	})
}
