package integration

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// nodesSeenBy is `node ls --format json` on d, by node ID.
func nodesSeenBy(t *testing.T, d *daemon) map[string]api.Node {
	t.Helper()
	out, errOut, code := d.cli("", "node", "ls", "--format", "json")
	if code != 0 {
		return nil
	}
	var nodes []api.Node
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("node ls on %s: %v\n%s%s", d.name, err, out, errOut)
	}
	byID := map[string]api.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	return byID
}

// Real daemons gossip over real UDP and TCP with the cluster's keyring:
// every node sees every other through gossip, a killed one goes down and
// comes back, and the local data plane's ipsec stream carries the keys.
func TestGossipBetweenDaemons(t *testing.T) {
	c := newCluster(t, 3)
	ids := map[*daemon]string{}
	for _, d := range c.daemons {
		st, err := d.status()
		if err != nil {
			t.Fatal(err)
		}
		ids[d] = st.NodeID
	}
	allSee := func(want map[string]string) func() bool {
		return func() bool {
			for _, d := range c.daemons {
				if !d.running() {
					continue
				}
				seen := nodesSeenBy(t, d)
				for id, status := range want {
					if n, ok := seen[id]; !ok || n.Status != status || n.GossipAddr == "" {
						return false
					}
				}
			}
			return true
		}
	}
	ready := map[string]string{}
	for _, id := range ids {
		ready[id] = api.NodeReady
	}
	waitFor(t, 30*time.Second, "every daemon gossiping with every other", allSee(ready))
	members := func(want int) func() bool {
		return func() bool {
			for _, d := range c.daemons {
				if st, err := d.status(); d.running() && (err != nil || st.Gossip == nil || st.Gossip.Members != want || st.Gossip.PrimaryLamport == 0) {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 30*time.Second, "3 gossip members on every daemon", members(3))

	out, _, code := c.daemons[1].cli("", "keys", "ls", "--format", "json")
	var keys []api.KeyInfo
	if err := json.Unmarshal([]byte(out), &keys); code != 0 || err != nil || len(keys) != 4 {
		t.Fatalf("keys ls: exit %d, %v, %s", code, err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *api.Keyring, 1)
	go func() {
		_ = c.daemons[2].client.WatchKeyring(ctx, "ipsec", func(k *api.Keyring) error {
			got <- k
			cancel()
			return nil
		})
	}()
	select {
	case k := <-got:
		if len(k.Keys) != 2 || len(k.Keys[0].Key) != 32 || len(k.Keys[1].Key) != 32 {
			t.Fatalf("ipsec keyring from the stream: %d keys", len(k.Keys))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no ipsec keyring on the stream")
	}

	// kill -9 a follower: gossip on the others sees it go, then come back.
	var victim *daemon
	for _, d := range c.daemons {
		if d != c.leader() {
			victim = d
			break
		}
	}
	victim.kill()
	waitFor(t, 30*time.Second, "the killed daemon seen down", allSee(map[string]string{ids[victim]: api.NodeDown}))
	waitFor(t, 30*time.Second, "2 gossip members on the survivors", members(2))
	victim.start()
	waitFor(t, 30*time.Second, "the restarted daemon back in gossip", allSee(ready))
	waitFor(t, 30*time.Second, "3 gossip members on every daemon again", members(3))
}
