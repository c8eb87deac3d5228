package manager

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// BenchmarkSecretCreate measures secret creation (1 KiB) through the
// control API of a 3-manager cluster (real TCP, TLS and bolt, sealed log):
// "sequential" is one client on the leader, reporting the median and p99
// latency; "concurrent" is 64 clients spread over the three managers,
// reporting writes per second. Goals (issue 5): p50 ≤ 1.0 ms,
// ≥ 8,000 writes/s.
func BenchmarkSecretCreate(b *testing.B) {
	nodes := startBenchCluster(b, 3, false)
	defer func() {
		for _, n := range nodes {
			n.stop(b)
		}
	}()
	data := make([]byte, 1024)
	var seq atomic.Int64
	create := func(c *api.Client) error {
		_, err := c.CreateSecret(context.Background(), api.SecretCreateRequest{Name: fmt.Sprintf("s%d", seq.Add(1)), Data: data})
		return err
	}
	leader := nodes[0]
	for _, n := range nodes {
		if st, err := api.NewUnixClient(n.cfg.SocketPath).Status(context.Background()); err == nil && st.IsLeader {
			leader = n
		}
	}
	b.Run("sequential", func(b *testing.B) {
		c := api.NewUnixClient(leader.cfg.SocketPath)
		defer c.Close()
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			start := time.Now()
			if err := create(c); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	})
	b.Run("concurrent", func(b *testing.B) {
		const writers = 64
		var next atomic.Int64
		errs := make(chan error, writers)
		var wg sync.WaitGroup
		clients := make([]*api.Client, writers)
		for i := range clients {
			clients[i] = api.NewUnixClient(nodes[i%len(nodes)].cfg.SocketPath)
			defer clients[i].Close()
		}
		b.ResetTimer()
		for _, c := range clients {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					if err := create(c); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	})
}
