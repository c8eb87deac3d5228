package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.etcd.io/bbolt"

	"github.com/holdfast/holdfast/api"
)

const sigCont = syscall.SIGCONT

// fault is one kind of nemesis. run injects it, holds it for a time
// chosen by rng and heals it (restarting and unlocking what it stopped);
// unavailable says why it cannot run here, or "".
type fault struct {
	name        string
	unavailable func(c *chaosCluster, noNet string) string
	run         func(c *chaosCluster, rng *mrand.Rand) error
}

func always(*chaosCluster, string) string { return "" }

func needsNetns(_ *chaosCluster, noNet string) string {
	if noNet != "" {
		return "partitions need network namespaces: " + noNet
	}
	return ""
}

func needsTmpfs(c *chaosCluster, noNet string) string {
	if !c.nodes[0].tmpfs {
		return "disk full needs data dirs on a small tmpfs (mount needs root): " + noNet
	}
	return ""
}

// holdFor is a fault's duration: 1–2 s, longer than the election timeout
// (400 ms).
func holdFor(rng *mrand.Rand) time.Duration {
	return time.Second + time.Duration(rng.IntN(1000))*time.Millisecond
}

// faults is every fault, in the quick run's order.
func faults() []fault {
	return []fault{
		{"kill-leader", always, func(c *chaosCluster, rng *mrand.Rand) error {
			l, err := c.leader()
			if err != nil {
				return err
			}
			return c.killRestart(l, rng)
		}},
		{"kill-follower", always, func(c *chaosCluster, rng *mrand.Rand) error {
			f, err := c.follower(rng)
			if err != nil {
				return err
			}
			return c.killRestart(f, rng)
		}},
		{"pause-leader", always, func(c *chaosCluster, rng *mrand.Rand) error {
			l, err := c.leader()
			if err != nil {
				return err
			}
			return c.pause(l, rng)
		}},
		{"pause-follower", always, func(c *chaosCluster, rng *mrand.Rand) error {
			f, err := c.follower(rng)
			if err != nil {
				return err
			}
			return c.pause(f, rng)
		}},
		{"partition-leader", needsNetns, func(c *chaosCluster, rng *mrand.Rand) error {
			l, err := c.leader()
			if err != nil {
				return err
			}
			return c.partition([][]int{{l}, others(len(c.nodes), l)}, rng)
		}},
		{"partition-majority-minority", needsNetns, func(c *chaosCluster, rng *mrand.Rand) error {
			// The minority holds the leader: it must stop acknowledging.
			l, err := c.leader()
			if err != nil {
				return err
			}
			n := len(c.nodes)
			minority := []int{l}
			for len(minority) < (n-1)/2 {
				minority = append(minority, (l+len(minority))%n)
			}
			return c.partition([][]int{minority, others(n, minority...)}, rng)
		}},
		{"partition-bridge", needsNetns, func(c *chaosCluster, rng *mrand.Rand) error {
			// Two majorities that share one node, the bridge.
			n := len(c.nodes)
			b := rng.IntN(n)
			var left, right []int
			for i := 1; i < n; i++ {
				if i <= (n-1)/2 {
					left = append(left, (b+i)%n)
				} else {
					right = append(right, (b+i)%n)
				}
			}
			return c.partition([][]int{append(left, b), append(right, b)}, rng)
		}},
		{"partition-ring", needsNetns, func(c *chaosCluster, rng *mrand.Rand) error {
			// Each node sees only its two neighbours.
			n := len(c.nodes)
			var groups [][]int
			for i := range n {
				groups = append(groups, []int{i, (i + 1) % n})
			}
			return c.partition(groups, rng)
		}},
		{"restart-all-locked", always, restartAllLocked},
		{"rotate-unlock-key-while-down", always, rotateWhileDown},
		{"flip-raft-byte", always, flipRaftByte},
		{"flip-file-byte", always, flipFileByte},
		{"disk-full", needsTmpfs, diskFull},
		{"clock-skew", always, clockSkew},
		{"power-cut-leader", needsPowerCut, func(c *chaosCluster, rng *mrand.Rand) error {
			l, err := c.leader()
			if err != nil {
				return err
			}
			return c.powerCut(rng, l)
		}},
		{"power-cut-follower", needsPowerCut, func(c *chaosCluster, rng *mrand.Rand) error {
			f, err := c.follower(rng)
			if err != nil {
				return err
			}
			return c.powerCut(rng, f)
		}},
		{"power-cut-all", needsPowerCut, func(c *chaosCluster, rng *mrand.Rand) error {
			return c.powerCut(rng, others(len(c.nodes))...)
		}},
		{"new-address", always, newAddress},
		{"churn", always, churn}, // nemesis_churn_test.go
		{"oneway-follower-deaf", needsNetns, onewayFollowerDeaf},
		{"oneway-leader-deaf", needsNetns, onewayLeaderDeaf},
		{"oneway-random", needsNetns, onewayRandom},
		{"snapshot-catch-up", needsSnapshotTuning, snapshotCatchUp},
		{"slow-disk-leader", needsPowerCut, slowDiskLeader},
		{"rotate-keys", always, rotateKeys},
	}
}

func others(n int, except ...int) []int {
	var out []int
	for i := range n {
		skip := false
		for _, e := range except {
			skip = skip || e == i
		}
		if !skip {
			out = append(out, i)
		}
	}
	return out
}

// killRestart kills node i with SIGKILL, keeps it down, restarts and
// unlocks it.
func (c *chaosCluster) killRestart(i int, rng *mrand.Rand) error {
	n := c.nodes[i]
	n.kill()
	hold(holdFor(rng))
	if err := n.start(); err != nil {
		return err
	}
	return c.unlock(n)
}

// pause stops node i with SIGSTOP for longer than the election timeout.
func (c *chaosCluster) pause(i int, rng *mrand.Rand) error {
	n := c.nodes[i]
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	hold(holdFor(rng))
	return n.signal(syscall.SIGCONT)
}

// partition cuts the network between groups, holds, and heals.
func (c *chaosCluster) partition(groups [][]int, rng *mrand.Rand) error {
	err := c.hosts.partition(groups)
	if err == nil {
		hold(holdFor(rng) + time.Second)
	}
	if herr := c.hosts.heal(); herr != nil {
		return errors.Join(err, herr)
	}
	return err
}

// restartAllLocked kills every manager, restarts them all (each comes up
// locked) and unlocks them.
func restartAllLocked(c *chaosCluster, rng *mrand.Rand) error {
	for _, n := range c.nodes {
		n.kill()
	}
	for _, n := range c.nodes {
		if err := n.start(); err != nil {
			return err
		}
		st, err := n.status()
		if err != nil {
			return err
		}
		if st.State != api.StateLocked {
			return fmt.Errorf("%s restarted %s; want locked (autolock is on)", n.name, st.State)
		}
	}
	hold(holdFor(rng) / 2)
	for _, n := range c.nodes {
		if err := c.unlock(n); err != nil {
			return err
		}
	}
	return nil
}

// rotateWhileDown kills a follower, rotates the unlock key, restarts the
// follower, which is still wrapped under the old key and must unlock with
// it, and then learns the new one.
func rotateWhileDown(c *chaosCluster, rng *mrand.Rand) error {
	fi, err := c.follower(rng)
	if err != nil {
		return err
	}
	f := c.nodes[fi]
	f.kill()
	l, err := c.leader()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The rotation's answer can be lost (503): read the key that holds.
	_, rerr := c.nodes[l].client.RotateUnlockKey(ctx, api.RotateUnlockKeyRequest{})
	var key *api.UnlockKeyResponse
	err = waitUntil(30*time.Second, "the unlock key", func() (bool, string) {
		k, err := c.nodes[l].client.UnlockKey(ctx)
		key = k
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		return err
	}
	old := c.keys[len(c.keys)-1]
	if key.UnlockKey == old {
		return fmt.Errorf("the unlock key did not change (rotate: %v)", rerr)
	}
	c.keys = append(c.keys, key.UnlockKey)
	hold(holdFor(rng))
	if err := f.start(); err != nil {
		return err
	}
	if st, err := f.status(); err != nil || st.State != api.StateLocked {
		return fmt.Errorf("%s after restart: %+v, %v; want locked", f.name, st, err)
	}
	if err := c.unlockWith(f, old); err != nil {
		return fmt.Errorf("%s was down during the rotation and must unlock with the old key: %v", f.name, err)
	}
	return nil
}

// flipRaftByte stops a follower, flips one byte of the newest entry in its
// raft log, and checks that it refuses to start (or to unlock) rather than
// serve; then it wipes the node, removes it from the cluster and joins it
// again as a new manager.
func flipRaftByte(c *chaosCluster, rng *mrand.Rand) error {
	return flipAndRejoin(c, rng, func(f *chaosNode) (string, error) { return flipNewestEntry(f.raftDB(), rng) })
}

// flipFileByte is flipRaftByte for the node's other files: its key file
// (the DEKs), its TLS key, or its newest raft snapshot.
func flipFileByte(c *chaosCluster, rng *mrand.Rand) error {
	return flipAndRejoin(c, rng, func(f *chaosNode) (string, error) {
		targets := []string{f.diskPath("keys"), f.diskPath(filepath.Join("certs", "node.key"))}
		if snaps, _ := filepath.Glob(f.diskPath(filepath.Join("raft", "snapshots", "*.snap"))); len(snaps) > 0 {
			targets = append(targets, snaps[len(snaps)-1])
		}
		return flipMiddleByte(targets[rng.IntN(len(targets))], rng)
	})
}

// flipMiddleByte flips one byte in the middle half of the file at path.
func flipMiddleByte(path string, rng *mrand.Rand) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(raw) < 8 {
		return "", fmt.Errorf("%s has only %d bytes", path, len(raw))
	}
	off := len(raw)/4 + rng.IntN(len(raw)/2)
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	if _, err := fh.WriteAt([]byte{raw[off] ^ 0x20}, int64(off)); err != nil {
		return "", err
	}
	return fmt.Sprintf("byte %d of %s", off, path), fh.Sync()
}

// flipAndRejoin stops a follower, damages its disk with flip, checks that
// it refuses to start or unlock rather than serve, then wipes it, removes
// it and joins it again.
func flipAndRejoin(c *chaosCluster, rng *mrand.Rand, flip func(*chaosNode) (string, error)) error {
	fi, err := c.follower(rng)
	if err != nil {
		return err
	}
	f := c.nodes[fi]
	if err := f.term(); err != nil {
		return fmt.Errorf("stop %s: %v", f.name, err)
	}
	where, err := flip(f)
	if err != nil {
		return err
	}
	refused := false
	if err := f.start(); err != nil {
		refused = true // it exited at start: the wanted outcome
	} else if st, err := f.status(); err == nil && st.State == api.StateLocked {
		uerr := c.unlock(f)
		st, serr := f.status()
		// Unlocked, it may still be catching up: that is not a refusal.
		refused = uerr != nil || serr != nil || (st.State != api.StateReady && st.State != api.StateCatchingUp)
	}
	if f.running() && !refused {
		// Not refused at start or unlock: it must at least never serve;
		// the cycle's checks would see a wrong answer. Fail here, naming
		// where the byte was flipped.
		f.kill()
		return fmt.Errorf("%s: %w (flipped %s)", f.name, errNotRefused, where)
	}
	f.kill()
	// Wipe, remove the old identity, and join again.
	l, err := c.leader()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.nodes[l].client.RemoveNode(ctx, f.id, true); err != nil && apiStatus(err) != http.StatusNotFound {
		return fmt.Errorf("node rm --force %s: %v", f.id, err)
	}
	if err := wipe(f.dir); err != nil {
		return err
	}
	if err := f.start(); err != nil {
		return err
	}
	return c.join(f, c.nodes[l].listen)
}

// wipe removes everything inside dir (a mount point stays).
func wipe(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// flipNewestEntry flips one byte in the middle of the stored value of the
// newest raft log entry in the bolt file at path.
func flipNewestEntry(path string, rng *mrand.Rand) (string, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	var val []byte
	var index []byte
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("logs"))
		if b == nil {
			return errors.New("no logs bucket in " + path)
		}
		k, v := b.Cursor().Last()
		if k == nil {
			return errors.New("no log entries in " + path)
		}
		index = append(index, k...)
		val = append(val, v...)
		return nil
	})
	db.Close()
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	// The entry's bytes can be there more than once: bolt copies a page
	// on write, and a freed page keeps the old copy until it is reused
	// (often with the chaos nodes' small, often compacted logs). Flip
	// the same byte of every copy, so that the live one is hit.
	var ats []int
	for from := 0; ; {
		i := bytes.Index(raw[from:], val)
		if i < 0 {
			break
		}
		ats = append(ats, from+i)
		from += i + len(val)
	}
	if len(ats) == 0 {
		return "", fmt.Errorf("cannot locate the newest entry's bytes in %s", path)
	}
	rel := len(val)/4 + rng.IntN(len(val)/2)
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	for _, at := range ats {
		if _, err := fh.WriteAt([]byte{raw[at+rel] ^ 0x20}, int64(at+rel)); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("byte %d of the newest entry (%x, %d copies) in %s", rel, index, len(ats), path), fh.Sync()
}

// diskFull fills a node's data dir (a small tmpfs) to the last byte,
// holds, and frees it. Writes during the fault fail or are not
// acknowledged by that node; nothing acknowledged is lost; the node
// recovers once space is free.
func diskFull(c *chaosCluster, rng *mrand.Rand) error {
	l, err := c.leader()
	if err != nil {
		return err
	}
	n := c.nodes[l]
	filler := filepath.Join(n.dir, "filler")
	fh, err := os.Create(filler)
	if err != nil {
		return err
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := fh.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				fh.Close()
				return err
			}
			break
		}
	}
	// Fill the last partial chunk too.
	for {
		if _, err := fh.Write(chunk[:512]); err != nil {
			break
		}
	}
	fh.Close()
	hold(holdFor(rng) + time.Second)
	if err := os.Remove(filler); err != nil {
		return err
	}
	if n.pfs != nil {
		// On a power-cut filesystem the filler's space comes back once
		// its removal is durable (until then a cut could restore it).
		if err := syncDir(n.dir); err != nil {
			return err
		}
	}
	if !n.running() {
		return fmt.Errorf("%s is gone after its disk filled", n.name)
	}
	select {
	case err := <-n.exited:
		n.exited <- err
		return fmt.Errorf("%s exited when its disk filled: %v", n.name, err)
	default:
	}
	return nil
}
