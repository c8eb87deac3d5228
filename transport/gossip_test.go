package transport

import (
	"bytes"
	"crypto/rand"
	"io"
	"log"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/holdfast/holdfast/internal/testutil"
)

func gossipKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func startTestGossip(t *testing.T, id, cluster string, keys [][]byte, primary []byte) *Gossip {
	t.Helper()
	g, err := StartGossip(GossipConfig{
		NodeID: id, ClusterID: cluster, BindAddr: "127.0.0.1:0", AdvertiseHost: "127.0.0.1",
		Keys: keys, Primary: primary,
		NewLogger: func(observe func(slog.Level, string) slog.Level) *log.Logger {
			return log.New(observerWriter(observe), "", 0)
		},
		Tune: func(c *memberlist.Config) {
			c.ProbeInterval, c.ProbeTimeout, c.GossipInterval = 200*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
			c.TCPTimeout = 2 * time.Second
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(false) })
	return g
}

// observerWriter feeds each log line to observe, as the manager's bridge
// does.
type observerWriter func(slog.Level, string) slog.Level

func (w observerWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		w(slog.LevelInfo, string(line))
	}
	return len(p), nil
}

var _ io.Writer = observerWriter(nil)

func waitGossip(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, testutil.Waiting(what, cond))
}

func TestGossipKeyRotationAndRefusal(t *testing.T) {
	k1, k2, k3 := gossipKey(t), gossipKey(t), gossipKey(t)
	a := startTestGossip(t, "a", "c1", [][]byte{k1, k2}, k1)
	b := startTestGossip(t, "b", "c1", [][]byte{k1, k2}, k1)
	b.JoinMissing(map[string]string{"a": a.Addr()}, slog.New(slog.DiscardHandler))
	waitGossip(t, "a and b to see each other", func() bool {
		x, _ := a.Reachable("b")
		y, _ := b.Reachable("a")
		return x && y && a.Members() == 2
	})

	// Rotate as the manager does, one node a little before the other:
	// k2 becomes primary, k3 is added, k1 goes.
	if err := a.SetKeys([][]byte{k2, k3}, k2); err != nil {
		t.Fatal(err)
	}
	keys, primary := a.Keys()
	if len(keys) != 2 || !bytes.Equal(primary, k2) {
		t.Fatalf("a's keyring after SetKeys: %d keys", len(keys))
	}
	if err := b.SetKeys([][]byte{k2, k3}, k2); err != nil {
		t.Fatal(err)
	}
	if a.DecryptFailures() != 0 || b.DecryptFailures() != 0 {
		t.Fatalf("decrypt failures during a rotation: %d, %d", a.DecryptFailures(), b.DecryptFailures())
	}

	// Another node with a key the cluster does not hold cannot join; one of
	// another cluster with our key cannot either (the label is
	// authenticated).
	stranger := startTestGossip(t, "s", "c1", [][]byte{k1}, k1)
	if n, err := stranger.ml.Join([]string{a.Addr()}); err == nil || n != 0 {
		t.Fatalf("a node with an old key joined: %d, %v", n, err)
	}
	other := startTestGossip(t, "o", "c2", [][]byte{k2}, k2)
	if n, err := other.ml.Join([]string{a.Addr()}); err == nil || n != 0 {
		t.Fatalf("a node of another cluster joined: %d, %v", n, err)
	}
	waitGossip(t, "the refusals counted", func() bool { return a.DecryptFailures() > 0 })
	for _, name := range a.MemberNames() {
		if name == "s" || name == "o" {
			t.Fatalf("a lists %s as a member", name)
		}
	}

	// b stops without a word: a sees it go.
	b.Shutdown(false)
	waitGossip(t, "a to see b down", func() bool {
		alive, known := a.Reachable("b")
		return known && !alive
	})
}
