package manager

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/raftlog"
)

// TestVerifySealedLogAllowsGapsTheSnapshotCovers: a follower that installs
// a snapshot past its log keeps raft's trailing entries from before it,
// so its log has a gap the snapshot covers; that must not keep it from
// starting (the chaos soak found a node refusing to unlock over it). A gap
// after the newest snapshot is still refused.
func TestVerifySealedLogAllowsGapsTheSnapshotCovers(t *testing.T) {
	dir := t.TempDir()
	opts := raftlog.Options{ClusterID: "c1", Keys: raftlog.NewKeyring(seal.NewKey())}
	store, err := raftlog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	snaps, err := raftlog.NewSnapshotStore(dir, 2, opts)
	if err != nil {
		t.Fatal(err)
	}
	put := func(from, to uint64) {
		t.Helper()
		var logs []*raft.Log
		for i := from; i <= to; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("x")})
		}
		if err := store.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	put(1, 10)  // trailing entries kept from before the snapshot
	put(20, 25) // entries after a snapshot at 19
	sink, err := snaps.Create(raft.SnapshotVersionMax, 19, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	s := &sealedLog{dir: dataDir{dir: dir}}
	if err := s.verify(store, snaps); err != nil {
		t.Fatalf("a gap the snapshot covers: %v", err)
	}

	put(27, 28) // entry 26 missing, after the snapshot
	err = s.verify(store, snaps)
	if !errors.Is(err, raft.ErrLogNotFound) || !strings.Contains(err.Error(), "entry 26") {
		t.Fatalf("a gap after the snapshot: %v, want entry 26 not found", err)
	}
}
