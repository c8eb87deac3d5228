package integration

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"time"
)

// The new-address nemesis: a manager (the leader half the time) comes
// back from a crash at another address, as a replaced cloud instance or
// a new DHCP lease does, while writes flow. In namespaces it moves
// between its namespace's two IPs (nodeIP and altIP, both on its veth);
// on loopback it moves to another port. The cycle's checks then hold as
// for any fault, and every node must list it at its new address.

// altIP is node i's second address in its namespace.
func altIP(i int) string { return fmt.Sprintf("10.77.0.%d", 110+i) }

// hostIPs are the addresses node i may listen at: partitions cut both.
func hostIPs(i int) []string { return []string{nodeIP(i), altIP(i)} }

// newAddress kills a manager, holds, and restarts it at its other
// address; it returns once every node lists it there.
func newAddress(c *chaosCluster, rng *mrand.Rand) error {
	var i int
	var err error
	if rng.IntN(2) == 0 {
		i, err = c.leader()
	} else {
		i, err = c.follower(rng)
	}
	if err != nil {
		return err
	}
	n := c.nodes[i]
	next := freePort(c.t)
	if n.ns != "" {
		host, _, _ := net.SplitHostPort(n.listen)
		ip := altIP(i)
		if host == ip {
			ip = nodeIP(i)
		}
		// Idempotent: the second address stays on the veth once added.
		if err := ipCmd("-n", n.ns, "addr", "replace", altIP(i)+"/24", "dev", "eth0"); err != nil {
			return err
		}
		next = net.JoinHostPort(ip, "4242")
	}
	n.kill()
	hold(holdFor(rng))
	old := n.listen
	n.listen = next
	if err := n.start(); err != nil {
		return fmt.Errorf("%s at %s (was %s): %v", n.name, next, old, err)
	}
	if err := c.unlock(n); err != nil {
		return err
	}
	began := time.Now()
	defer func() {
		c.t.Logf("new-address: %s moved from %s to %s; every node listed it there %s after its unlock", n.name, old, next, time.Since(began).Round(time.Millisecond))
	}()
	return waitUntil(60*time.Second, fmt.Sprintf("every node listing %s at %s (was %s)", n.name, next, old), func() (bool, string) {
		for _, o := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			nodes, err := o.client.Nodes(ctx)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: node ls: %v", o.name, err)
			}
			for _, r := range nodes {
				if r.ID == n.id && r.Addr != next {
					return false, fmt.Sprintf("%s lists %s at %s", o.name, n.name, r.Addr)
				}
			}
			st, err := o.status()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", o.name, err)
			}
			for _, m := range st.Managers {
				if m.NodeID == n.id && m.Addr != next {
					return false, fmt.Sprintf("%s's raft has %s at %s", o.name, n.name, m.Addr)
				}
			}
		}
		return true, ""
	})
}
