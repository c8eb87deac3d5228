package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// newLockedCluster is newCluster with autolock on; it returns the unlock key.
func newLockedCluster(tb testing.TB, n int) (*cluster, string) {
	tb.Helper()
	c := &cluster{tb: tb}
	for i := range n {
		c.daemons = append(c.daemons, newDaemon(tb, "d"+string(rune('0'+i))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	init, err := c.daemons[0].client.Init(ctx, api.InitRequest{Autolock: true})
	if err != nil {
		tb.Fatalf("init --autolock: %v", err)
	}
	c.init = init
	for _, d := range c.daemons[1:] {
		if out, errOut, code := d.cli("", "join", "--token", init.ManagerToken, init.Addr); code != 0 {
			tb.Fatalf("join %s: exit %d: %s%s", d.name, code, out, errOut)
		}
	}
	c.waitHealthy()
	return c, init.UnlockKey
}

// restartLocked kills d and starts it again; it comes up locked.
func restartLocked(tb testing.TB, d *daemon) {
	tb.Helper()
	d.kill()
	d.start()
	st, err := d.status()
	if err != nil || st.State != api.StateLocked {
		tb.Fatalf("%s after restart: %+v, %v; want locked", d.name, st, err)
	}
}

func TestAutolockedClusterRestartsLockedAndUnlocks(t *testing.T) {
	c, key := newLockedCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var names []string
	for i, d := range c.daemons {
		name := "before-" + d.name
		if _, err := d.client.CreateSecret(ctx, api.SecretCreateRequest{Name: name, Data: []byte{byte(i), 1, 2}}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	// Every manager wraps its keys once it knows the cluster's key; only
	// then does a restart find it locked.
	waitFor(t, 20*time.Second, "keys wrapped everywhere", func() bool {
		for _, d := range c.daemons {
			if !wrappedOnDisk(d) {
				return false
			}
		}
		return true
	})
	for _, d := range c.daemons {
		d.kill()
	}
	for _, d := range c.daemons {
		d.start()
		st, err := d.status()
		if err != nil || st.State != api.StateLocked {
			t.Fatalf("%s: got %+v, %v; want locked", d.name, st, err)
		}
		if _, err := d.client.Secrets(ctx); apiStatus(err) != http.StatusLocked {
			t.Errorf("%s serves while locked: %v", d.name, err)
		}
		out, errOut, code := d.cli("", "node", "ls")
		if code != 1 || !strings.Contains(errOut, "holdfast: this node is locked; run 'holdfast unlock'") {
			t.Errorf("%s: node ls while locked: exit %d, %q%q", d.name, code, out, errOut)
		}
	}
	// A wrong key: exit 1, invalid unlock key, still locked.
	if _, errOut, code := c.daemons[0].cli("HFKEY-1-"+strings.Repeat("a", 58)+"\n", "unlock"); code != 1 || !strings.Contains(errOut, "invalid unlock key") {
		t.Errorf("unlock with a wrong key: exit %d, %q", code, errOut)
	}
	for _, d := range c.daemons {
		if out, errOut, code := d.cli(key+"\n", "unlock"); code != 0 {
			t.Fatalf("unlock %s: exit %d: %s%s", d.name, code, out, errOut)
		}
	}
	c.waitHealthy()
	for _, d := range c.daemons {
		for _, name := range names {
			if _, err := d.client.Secret(ctx, name); err != nil {
				t.Errorf("%s: secret %s written before the restart: %v", d.name, name, err)
			}
		}
	}
}

// wrappedOnDisk reads the daemon's key file: an autolock envelope starts
// with "HFWRAP".
func wrappedOnDisk(d *daemon) bool {
	b, err := readFile(d.dir + "/keys")
	return err == nil && strings.HasPrefix(string(b), "HFWRAP")
}

// BenchmarkUnlockToFirstWrite measures, on a 3-manager autolocked cluster,
// the time from `unlock` of a restarted (locked) manager to the first
// acknowledged write through it.
func BenchmarkUnlockToFirstWrite(b *testing.B) {
	c, key := newLockedCluster(b, 3)
	d := c.daemons[1]
	waitFor(b, 20*time.Second, "keys wrapped", func() bool { return wrappedOnDisk(d) })
	var times []time.Duration
	for b.Loop() {
		b.StopTimer()
		restartLocked(b, d)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b.StartTimer()
		start := time.Now()
		if _, err := d.client.Unlock(ctx, api.UnlockRequest{Key: key}); err != nil {
			b.Fatal(err)
		}
		if err := write(ctx, d); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		cancel()
	}
	b.ReportMetric(float64(percentile(times, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(times, 0.99).Microseconds())/1000, "p99-ms")
	b.Logf("unlock to first write over %d restarts: p50 %s, p99 %s", len(times), percentile(times, 0.5), percentile(times, 0.99))
}
