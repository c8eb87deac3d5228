package integration

import (
	"context"
	"testing"
	"time"
)

// Three daemons; kill -9 the leader; a write through a survivor is
// acknowledged; the killed node restarts and catches up.
func TestKillLeaderThenWriteThroughSurvivor(t *testing.T) {
	c := newCluster(t, 3)
	killed, took := c.killLeaderAndWrite()
	t.Logf("kill -9 of the leader to an acknowledged write: %s", took)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var want string
	for _, d := range c.daemons {
		if d.running() {
			tok, err := d.client.JoinToken(ctx, "worker")
			if err != nil {
				t.Fatal(err)
			}
			want = tok.Token
		}
	}
	killed.start()
	got, err := killed.client.JoinToken(ctx, "worker")
	if err != nil {
		t.Fatalf("read on the restarted node: %v", err)
	}
	if got.Token != want {
		t.Errorf("restarted node read token %q; want %q, written while it was down", got.Token, want)
	}
	c.waitHealthy()
}

// BenchmarkFailover measures, over b.N kills of the leader (at least 10
// are meaningful: run with -benchtime=10x), the time from kill -9 to the
// next acknowledged write, and reports the median and p99.
func BenchmarkFailover(b *testing.B) {
	c := newCluster(b, 3)
	var times []time.Duration
	for b.Loop() {
		killed, took := c.killLeaderAndWrite()
		times = append(times, took)
		b.StopTimer()
		killed.start()
		c.waitHealthy()
		b.StartTimer()
	}
	b.ReportMetric(float64(percentile(times, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(times, 0.99).Microseconds())/1000, "p99-ms")
	b.Logf("failover over %d kills: p50 %s, p99 %s, all %v", len(times), percentile(times, 0.5), percentile(times, 0.99), times)
}
