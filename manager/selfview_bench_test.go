package manager

import (
	"fmt"
	"testing"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// BenchmarkViewsForEveryone measures what a change that concerns every
// worker costs a manager: one view for each of N workers at one state
// index, N nodes gossiping. "per-worker" builds each view whole, with
// every other node's gossip address (the build before selfview.go);
// "shared" builds the shared part once and each worker's sample.
func BenchmarkViewsForEveryone(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		s := bigState(3, n-3)
		ids := make([]string, 0, n)
		for id := range s.Nodes {
			ids = append(ids, id)
		}
		b.Run(fmt.Sprintf("per-worker/N=%d", n), func(b *testing.B) {
			peers := 0
			for b.Loop() {
				for _, id := range ids {
					kv := keyViewOf(s, id)
					v := &api.SelfView{Keyrings: keyringsToAPI(kv.rings), GossipPeers: kv.peers, Secrets: grantedRefs(s, id), CA: selfCAView(s, id)}
					peers += len(v.GossipPeers)
				}
			}
			b.ReportMetric(float64(peers)/float64(b.N)/float64(n), "peers/view")
		})
		b.Run(fmt.Sprintf("shared/N=%d", n), func(b *testing.B) {
			peers := 0
			var c selfViews
			f := fsm.New(nil)
			index := uint64(0)
			for b.Loop() {
				index++
				for _, id := range ids {
					v := selfViewOf(s, c.shared(f, s, index), id, false)
					peers += len(v.GossipPeers)
				}
			}
			b.ReportMetric(float64(peers)/float64(b.N)/float64(n), "peers/view")
		})
	}
}
