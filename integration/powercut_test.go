package integration

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/powerfs"
)

var (
	powerCutOnce sync.Once
	powerCutWhy  string
)

// powerCutUnavailable says why data dirs cannot be on power-cut
// filesystems here (FUSE does not mount), or "".
func powerCutUnavailable() string {
	powerCutOnce.Do(func() {
		if err := powerfs.Check(); err != nil {
			powerCutWhy = "power cuts need a FUSE mount (root and /dev/fuse): " + err.Error()
		}
	})
	return powerCutWhy
}

func needsPowerCut(c *chaosCluster, _ string) string {
	if c.nodes[0].pfs == nil {
		return c.noPowerCut
	}
	return ""
}

// mountPowerFS mounts a power-cut filesystem at dir over backing and
// unmounts it when the test ends (before dir and backing are removed).
func mountPowerFS(t testing.TB, dir, backing string) (*powerfs.FS, error) {
	pfs, err := powerfs.Mount(dir, backing)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := pfs.Close(); err != nil {
			t.Logf("unmount %s: %v; detaching it", dir, err)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return pfs, nil
}

// raftDB is the path of the node's raft.db for tools that map it (bbolt):
// on a power-cut filesystem, its backing file, since a page fault on a
// FUSE mapping in the process that serves the mount can deadlock with
// the garbage collector. A change made there is durable (bypassing the
// mount's record); the node must be stopped.
func (n *chaosNode) raftDB() string { return n.diskPath(filepath.Join("raft", "raft.db")) }

// diskPath is where the test reaches the node's file rel (a path inside
// its data dir) without going through its FUSE mount.
func (n *chaosNode) diskPath(rel string) string {
	if n.pfs != nil {
		return filepath.Join(n.backing, "tree", rel)
	}
	return filepath.Join(n.dir, rel)
}

// tamperWords are what a node says when it refuses its disk as damaged;
// after a power cut on an honest disk it must say none of them.
var tamperWords = regexp.MustCompile(`(?i)tamper|corrupt`)

// powerCut cuts the power of the nodes idx at once: each is killed with
// SIGKILL, its filesystem loses what was not durable, and after a hold
// all restart (locked) and are unlocked. Nothing acknowledged may be
// lost (the cycle's checks), no node may stay locked out, and no node may
// call its disk tampered with. For a moment before the cut their disks
// are slow (each fsync waits a few milliseconds), so that the cut likely
// finds writes that are not durable yet.
func (c *chaosCluster) powerCut(rng *mrand.Rand, idx ...int) error {
	for _, i := range idx {
		c.nodes[i].pfs.SetSyncDelay(time.Duration(1+rng.IntN(20)) * time.Millisecond)
	}
	hold(time.Duration(100+rng.IntN(500)) * time.Millisecond)
	for _, i := range idx {
		c.nodes[i].pfs.PowerOff()
	}
	for _, i := range idx {
		c.nodes[i].kill()
		c.nodes[i].pfs.SetSyncDelay(0)
	}
	for _, i := range idx {
		loss, err := c.nodes[i].pfs.Cut()
		if err != nil {
			return fmt.Errorf("cut the power of %s: %w", c.nodes[i].name, err)
		}
		c.t.Logf("power cut of %s: %s", c.nodes[i].name, loss)
	}
	hold(holdFor(rng) / 2)
	from := map[int]int64{}
	for _, i := range idx {
		n := c.nodes[i]
		if fi, err := os.Stat(n.log); err == nil {
			from[i] = fi.Size()
		}
		began := time.Now()
		if err := n.start(); err != nil {
			return fmt.Errorf("%s after a power cut: %w%s", n.name, err, tamperLines(n.log, from[i]))
		}
		c.t.Logf("%s restarted in %s", n.name, time.Since(began).Round(time.Millisecond))
		st, err := n.status()
		if err != nil {
			return err
		}
		if st.State != api.StateLocked {
			return fmt.Errorf("%s came back %s after a power cut; want locked (autolock is on)", n.name, st.State)
		}
	}
	for _, i := range idx {
		n := c.nodes[i]
		began := time.Now()
		if err := c.unlock(n); err != nil {
			return fmt.Errorf("%s is locked out after a power cut: %w%s", n.name, err, tamperLines(n.log, from[i]))
		}
		c.t.Logf("%s unlocked in %s", n.name, time.Since(began).Round(time.Millisecond))
	}
	for _, i := range idx {
		if lines := tamperLines(c.nodes[i].log, from[i]); lines != "" {
			return fmt.Errorf("%s calls its honest disk damaged after a power cut:%s", c.nodes[i].name, lines)
		}
	}
	return nil
}

// tamperLines returns the lines of the log after offset from that call
// the disk tampered with or corrupt, each on a new line, or "".
func tamperLines(log string, from int64) string {
	b, err := os.ReadFile(log)
	if err != nil || int64(len(b)) < from {
		return ""
	}
	var out []string
	for _, l := range strings.Split(string(b[from:]), "\n") {
		if tamperWords.MatchString(l) {
			out = append(out, "\n    "+l)
		}
	}
	return strings.Join(out, "")
}

// TestPowerCutFreshManager cuts the power of a new one-manager cluster
// right after its first acknowledged writes: they must all be there after
// the restart, and the manager must unlock.
func TestPowerCutFreshManager(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
	if why := powerCutUnavailable(); why != "" {
		t.Log(why)
		t.Skip(why)
	}
	c := newChaosCluster(t, 1, nil, false)
	n := c.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last string
	for range 5 {
		tok, err := n.client.RotateJoinToken(ctx, "worker")
		if err != nil {
			t.Fatal(err)
		}
		last = tok.Token
	}
	if err := c.powerCut(mrand.New(mrand.NewPCG(1, 2)), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.waitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := n.client.JoinToken(ctx, "worker")
	if err != nil {
		t.Fatalf("read the worker join token after the power cut: %v", err)
	}
	if got.Token != last {
		t.Fatalf("after the power cut the worker join token is %q; want the last acknowledged %q", got.Token, last)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
