package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// netHosts puts each node in its own network namespace, all on one bridge
// (10.77.0.0/24, node i at 10.77.0.10+i), so that partitions can be made
// with prohibit routes inside the namespaces. Names carry a random tag so
// that two runs do not collide; the bridge has no address, so two runs'
// identical subnets stay apart.
type netHosts struct {
	tag    string
	bridge string
	ns     []string

	mu      sync.Mutex
	blocked map[[2]int]bool // routes in ns[from] that prohibit to[1]
}

func nodeIP(i int) string { return fmt.Sprintf("10.77.0.%d", 10+i) }

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netnsUnavailable says why namespaces cannot be used here, or "".
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root (running as uid " + fmt.Sprint(os.Geteuid()) + ")"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "network namespaces need the ip command (iproute2): " + err.Error()
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	probe := "hfprobe" + hex.EncodeToString(b)
	if err := ipCmd("netns", "add", probe); err != nil {
		return "ip netns add fails here: " + err.Error()
	}
	_ = ipCmd("netns", "del", probe)
	return ""
}

// newNetHosts makes n namespaces on a fresh bridge; t.Cleanup removes
// them, even when the test fails.
func newNetHosts(t testing.TB, n int) *netHosts {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	h := &netHosts{tag: hex.EncodeToString(b), blocked: map[[2]int]bool{}}
	h.bridge = "hfbr" + h.tag // at most 15 characters
	t.Cleanup(h.destroy)
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("link", "add", h.bridge, "type", "bridge")
	must("link", "set", h.bridge, "up")
	for i := range n {
		ns := fmt.Sprintf("hf%s-%d", h.tag, i)
		host, peer := fmt.Sprintf("hfv%s%d", h.tag, i), fmt.Sprintf("hfp%s%d", h.tag, i)
		must("netns", "add", ns)
		h.ns = append(h.ns, ns)
		must("link", "add", host, "type", "veth", "peer", "name", peer)
		must("link", "set", host, "master", h.bridge)
		must("link", "set", host, "up")
		must("link", "set", peer, "netns", ns)
		must("-n", ns, "link", "set", peer, "name", "eth0")
		must("-n", ns, "addr", "add", nodeIP(i)+"/24", "dev", "eth0")
		must("-n", ns, "link", "set", "eth0", "up")
		must("-n", ns, "link", "set", "lo", "up")
	}
	return h
}

// destroy removes the namespaces (their veth ends go with them) and the
// bridge.
func (h *netHosts) destroy() {
	for _, ns := range h.ns {
		_ = ipCmd("netns", "del", ns)
	}
	_ = ipCmd("link", "del", h.bridge)
}

// partition cuts every pair of nodes that share no group, in both
// directions. Nodes in no group are cut from everyone.
func (h *netHosts) partition(groups [][]int) error {
	n := len(h.ns)
	linked := func(a, b int) bool {
		for _, g := range groups {
			var ina, inb bool
			for _, x := range g {
				ina = ina || x == a
				inb = inb || x == b
			}
			if ina && inb {
				return true
			}
		}
		return false
	}
	for a := range n {
		for b := range n {
			if a != b && !linked(a, b) {
				if err := h.block(a, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// block makes ns[from] refuse to send to node to.
func (h *netHosts) block(from, to int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.blocked[[2]int{from, to}] {
		return nil
	}
	for _, ip := range hostIPs(to) {
		if err := ipCmd("-n", h.ns[from], "route", "add", "prohibit", ip+"/32"); err != nil {
			return err
		}
	}
	h.blocked[[2]int{from, to}] = true
	return nil
}

// heal deletes every prohibit route.
func (h *netHosts) heal() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []string
	for k := range h.blocked {
		failed := false
		for _, ip := range hostIPs(k[1]) {
			if err := ipCmd("-n", h.ns[k[0]], "route", "del", "prohibit", ip+"/32"); err != nil {
				errs = append(errs, err.Error())
				failed = true
			}
		}
		if failed {
			continue
		}
		delete(h.blocked, k)
	}
	if len(errs) > 0 {
		return fmt.Errorf("heal: %s", strings.Join(errs, "; "))
	}
	return nil
}
