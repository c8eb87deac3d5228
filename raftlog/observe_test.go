package raftlog

import (
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/seal"
)

// TestObserveSyncs: the observer hears of each batch written to the WAL,
// once, with a positive duration, and nothing after it is removed.
func TestObserveSyncs(t *testing.T) {
	s := openStore(t, t.TempDir(), testOpts(t, NewKeyring(seal.NewKey())))
	var got []time.Duration
	s.ObserveSyncs(func(d time.Duration) { got = append(got, d) })
	storeN(t, s, 1, 10, "a")
	storeN(t, s, 11, 11, "b")
	storeN(t, s, 12, 30, "c")
	if len(got) != 3 {
		t.Fatalf("observed %d syncs for 3 batches", len(got))
	}
	for i, d := range got {
		if d <= 0 {
			t.Fatalf("sync %d took %s", i, d)
		}
	}
	s.ObserveSyncs(nil)
	storeN(t, s, 31, 31, "d")
	if len(got) != 3 {
		t.Fatalf("observed %d syncs after the observer was removed", len(got))
	}
}
