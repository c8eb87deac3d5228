package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// TestRestartAtNewAddress: the leader of three managers, and then a
// worker, restarted with another --listen-addr/--advertise-addr, listen
// and serve there: every node lists the new address (node ls, raft's
// managers), the manager replicates writes made through it and through
// the others, and its log says old and new. Before, the daemon kept
// node.json's address and said nothing.
func TestRestartAtNewAddress(t *testing.T) {
	c := newCluster(t, 3)
	w := newDaemon(t, "w")
	if out, errOut, code := w.cli("", "join", "--token", c.init.WorkerToken, c.init.Addr); code != 0 {
		t.Fatalf("join the worker: exit %d: %s%s", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	l := c.leader()
	moveDaemon(t, l)
	c.waitHealthy()
	lst, err := l.status()
	if err != nil {
		t.Fatal(err)
	}
	if lst.Addr != l.listen {
		t.Fatalf("%s's status says addr %s; want its new address %s", l.name, lst.Addr, l.listen)
	}
	for _, d := range c.daemons {
		waitFor(t, 30*time.Second, d.name+" listing "+l.name+" at "+l.listen, func() bool {
			return nodeAddrIs(ctx, d, lst.NodeID, l.listen) && managerAddrIs(d, lst.NodeID, l.listen)
		})
	}
	// Writes through the moved manager and through another reach every
	// manager.
	others := c.daemons[0]
	if others == l {
		others = c.daemons[1]
	}
	for i, via := range []*daemon{l, others} {
		name := fmt.Sprintf("after-move-%d", i)
		if _, err := via.client.CreateSecret(ctx, api.SecretCreateRequest{Name: name, Data: []byte("x")}); err != nil {
			t.Fatalf("create %s through %s: %v", name, via.name, err)
		}
		for _, d := range c.daemons {
			waitFor(t, 20*time.Second, d.name+" reading "+name, func() bool {
				_, err := d.client.Secret(ctx, name)
				return err == nil
			})
		}
	}
	waitFor(t, 20*time.Second, "every manager at the same applied index", func() bool {
		var idx []uint64
		for _, d := range c.daemons {
			st, err := d.status()
			if err != nil {
				return false
			}
			idx = append(idx, st.Raft.AppliedIndex)
		}
		return idx[0] == idx[1] && idx[1] == idx[2]
	})

	// A worker moves too.
	wst, err := w.status()
	if err != nil {
		t.Fatal(err)
	}
	moveDaemon(t, w)
	for _, d := range c.daemons {
		waitFor(t, 30*time.Second, d.name+" listing the worker at "+w.listen, func() bool {
			return nodeAddrIs(ctx, d, wst.NodeID, w.listen)
		})
	}
}

// moveDaemon stops d, restarts it at a fresh loopback address and checks
// that its log says the address changed, old and new.
func moveDaemon(t *testing.T, d *daemon) {
	t.Helper()
	old := d.listen
	if err := d.term(); err != nil {
		t.Fatalf("stop %s: %v", d.name, err)
	}
	d.listen = freePort(t)
	d.start()
	waitFor(t, 10*time.Second, d.name+" logging its move", func() bool {
		b, _ := os.ReadFile(d.log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "address changed") && strings.Contains(line, "old="+old) && strings.Contains(line, "new="+d.listen) {
				return true
			}
		}
		return false
	})
}

// nodeAddrIs reports whether d's node ls shows node id at addr.
func nodeAddrIs(ctx context.Context, d *daemon, id, addr string) bool {
	nodes, err := d.client.Nodes(ctx)
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.ID == id {
			return n.Addr == addr
		}
	}
	return false
}

// managerAddrIs reports whether d's status lists manager id (raft's
// configuration) at addr.
func managerAddrIs(d *daemon, id, addr string) bool {
	st, err := d.status()
	if err != nil {
		return false
	}
	for _, m := range st.Managers {
		if m.NodeID == id {
			return m.Addr == addr
		}
	}
	return false
}
