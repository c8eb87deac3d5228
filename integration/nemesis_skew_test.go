package integration

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// The clock-skew fault: one manager, the leader or a follower, runs with
// its wall clock minutes or hours off while the workload writes, then
// gets the right time back. Its clock is moved through a file that the
// test build (-tags failpoints) reads again and again
// (HOLDFAST_TEST_CLOCK_OFFSET_FILE), so a running leader can be skewed.
// While skewed, the manager must say so: either it hears the other
// managers and its status shows it off beyond the allowed skew (it then
// refuses to issue certificates), or its clock is so far behind that it
// cannot accept their certificates, and its log explains that a clock is
// off.

// skewOffsets are the fault's offsets: both ways, minutes and hours.
var skewOffsets = []time.Duration{3 * time.Minute, 90 * time.Minute, 7 * time.Hour, -2 * time.Minute, -90 * time.Minute}

// clockOffsetFile is where node n's test build reads its clock offset.
func clockOffsetFile(n *chaosNode) string {
	return filepath.Join(filepath.Dir(n.sock), "clock-offset")
}

// setClockOffset moves n's clock to off (atomically: the daemon never
// reads half a file).
func setClockOffset(n *chaosNode, off time.Duration) error {
	tmp := clockOffsetFile(n) + ".tmp"
	if err := os.WriteFile(tmp, []byte(off.String()+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, clockOffsetFile(n))
}

// skewableClock makes node n, not started yet, run the test build with
// its clock offset read from clockOffsetFile (no offset until the fault
// writes one).
func skewableClock(tb testing.TB, n *chaosNode) {
	tb.Helper()
	bin, err := failpointBinary()
	if err != nil {
		tb.Fatal(err)
	}
	n.bin, n.env = bin, []string{"HOLDFAST_TEST_CLOCK_OFFSET_FILE=" + clockOffsetFile(n)}
}

// useSkewableClocks restarts, one at a time, every node still on the
// product build on the test build whose clock offset file is read, and
// waits for the cluster after each. The nodes stay on it.
func (c *chaosCluster) useSkewableClocks() error {
	bin, err := failpointBinary()
	if err != nil {
		return err
	}
	for _, n := range c.nodes {
		if n.bin != "" {
			continue
		}
		if err := setClockOffset(n, 0); err != nil {
			return err
		}
		if err := n.term(); err != nil {
			return fmt.Errorf("stop %s for the skewable clock: %v", n.name, err)
		}
		n.bin, n.env = bin, []string{"HOLDFAST_TEST_CLOCK_OFFSET_FILE=" + clockOffsetFile(n)}
		if err := n.start(); err != nil {
			return err
		}
		if err := c.unlock(n); err != nil {
			return err
		}
		if err := c.waitReady(60 * time.Second); err != nil {
			return fmt.Errorf("after restarting %s on the test build: %v", n.name, err)
		}
	}
	return nil
}

// clockSkew is the fault: skew the leader or a follower, hold while
// checking that it explains itself, and heal.
func clockSkew(c *chaosCluster, rng *mrand.Rand) error {
	if err := c.useSkewableClocks(); err != nil {
		return err
	}
	i, err := c.leader()
	if rng.IntN(2) == 1 {
		i, err = c.follower(rng)
	}
	if err != nil {
		return err
	}
	n := c.nodes[i]
	off := skewOffsets[rng.IntN(len(skewOffsets))]
	// Half the time the data-plane keys rotate every 10 s (the shortest
	// setting) for the fault, so a rotation falls due, and is dated,
	// while a clock is off.
	rotate := rng.IntN(2) == 0
	holdFault := holdFor(rng)
	if rotate {
		if err := c.setKeyRotation(i, fastKeyRotation); err != nil {
			return err
		}
		holdFault = 11 * time.Second
	}
	logStart := fileSize(n.log)
	if err := setClockOffset(n, off); err != nil {
		return err
	}
	began := time.Now()
	explained := waitUntil(20*time.Second, n.name+" to say its clock is "+off.String()+" off", func() (bool, string) {
		return skewExplained(n, off, logStart)
	})
	if rest := holdFault - time.Since(began); rest > 0 {
		hold(rest)
	}
	if err := setClockOffset(n, 0); err != nil {
		return err
	}
	if rotate {
		if err := c.setKeyRotation(i, defaultKeyRotation); err != nil {
			return err
		}
	}
	if explained != nil {
		return explained
	}
	// Healed, it hears the others again and agrees with them.
	return waitUntil(30*time.Second, n.name+"'s clock agreeing again", func() (bool, string) {
		st, err := n.status()
		if err != nil {
			return false, err.Error()
		}
		if s := st.ClockSkew; s == nil || s.Refusing {
			return false, fmt.Sprintf("clock skew %+v", s)
		}
		return true, ""
	})
}

// skewExplained reports whether n, whose clock is off by off, says so:
// its status shows the offset and that it refuses to issue certificates,
// or (far behind, it refuses the others' certificates as not yet valid)
// its log since logStart explains the refusal by a clock.
func skewExplained(n *chaosNode, off time.Duration, logStart int64) (bool, string) {
	st, err := n.status()
	if err == nil && st.State == api.StateReady && st.ClockSkew != nil && st.ClockSkew.Refusing {
		got := time.Duration(st.ClockSkew.OffsetSeconds * float64(time.Second))
		if d := got - off; d < -5*time.Second || d > 5*time.Second {
			return false, fmt.Sprintf("status shows %s off; want %s", got, off)
		}
		return true, ""
	}
	if b, rerr := readFrom(n.log, logStart); rerr == nil && strings.Contains(string(b), "a clock is off") {
		return true, ""
	}
	return false, fmt.Sprintf("status %+v, %v; nothing in the log", st, err)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom reads path from offset off on.
func readFrom(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return nil, err
	}
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		k, err := f.Read(buf)
		sb.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return []byte(sb.String()), nil
}

// The key-rotation settings the fault switches between: the shortest,
// and the default the chaos cluster was created with.
const (
	fastKeyRotation    = "10s"
	defaultKeyRotation = "12h0m0s"
)

// setKeyRotation sets the cluster's key-rotation interval through a node
// other than skip (the skewed one), retrying while the cluster answers
// 503 (the setting is idempotent).
func (c *chaosCluster) setKeyRotation(skip int, every string) error {
	return waitUntil(30*time.Second, "key rotation set to "+every, func() (bool, string) {
		var errs []string
		for _, o := range c.nodes {
			if o.idx == skip || !o.running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := o.client.Update(ctx, api.UpdateRequest{KeyRotation: &every})
			cancel()
			if err == nil {
				return true, ""
			}
			errs = append(errs, o.name+": "+err.Error())
		}
		return false, strings.Join(errs, "; ")
	})
}
