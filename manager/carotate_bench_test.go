package manager

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// BenchmarkCARotation measures a whole CA rotation of a cluster of 3
// managers and 20 workers in this process (real TCP, TLS and bolt files):
// from 'ca --rotate' until every node holds a certificate from the new root
// and the old root is dropped. Each iteration is one rotation.
func BenchmarkCARotation(b *testing.B) {
	const managers, workers = 3, 20
	nodes := startBenchCluster(b, managers, false)
	tok, err := nodes[0].client.JoinToken(context.Background(), "worker")
	if err != nil {
		b.Fatal(err)
	}
	st, err := nodes[0].client.Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for range workers {
		w := startBenchNode(b, false)
		if _, err := w.client.Join(context.Background(), api.JoinRequest{Token: tok.Token, Addr: st.Addr}); err != nil {
			b.Fatalf("join worker: %v", err)
		}
	}
	cl := nodes[1].client // a follower, most likely: the request is forwarded
	b.Run(fmt.Sprintf("%dm+%dw", managers, workers), func(b *testing.B) {
		for b.Loop() {
			r, err := cl.RotateCA(context.Background(), api.CARotateRequest{})
			if err != nil {
				b.Fatalf("rotate: %v", err)
			}
			if r.Nodes != managers+workers {
				b.Fatalf("rotation over %d nodes; want %d", r.Nodes, managers+workers)
			}
			eventually(b, 60*time.Second, "the rotation to finish", func() bool {
				p, err := cl.CARotation(context.Background())
				return err == nil && p.ID == r.ID && p.State == api.CARotationDone
			})
		}
		perRotation := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(perRotation, "s/rotation")
		b.ReportMetric(0, "ns/op")
		b.Logf("CA rotation of %d managers + %d workers: %.3f s each (%d rotations)", managers, workers, perRotation, b.N)
	})
}
