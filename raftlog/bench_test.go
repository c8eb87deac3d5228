package raftlog

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BenchmarkStoreLogs stores batches of 64 entries of 1 KiB, sealed through
// Store (its write-ahead file, bolt behind it) and plain through
// raft-boltdb, both with fsync; "one" stores single 1 KiB entries, one
// StoreLogs each, through Store: the write raft makes for every command
// on an idle cluster, where a second region written per batch shows most.
func BenchmarkStoreLogs(b *testing.B) {
	const batch, size = 64, 1 << 10
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	run := func(b *testing.B, store raft.LogStore) {
		b.SetBytes(batch * size)
		logs := make([]*raft.Log, batch)
		next := uint64(1)
		for b.Loop() {
			for i := range logs {
				logs[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data}
				next++
			}
			if err := store.StoreLogs(logs); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sealed", func(b *testing.B) {
		keys, _ := newKeyring()
		s, err := Open(b.TempDir(), Options{ClusterID: testCluster, Keys: keys})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s)
	})
	b.Run("one", func(b *testing.B) {
		keys, _ := newKeyring()
		s, err := Open(b.TempDir(), Options{ClusterID: testCluster, Keys: keys})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.SetBytes(size)
		next := uint64(1)
		for b.Loop() {
			if err := s.StoreLogs([]*raft.Log{{Index: next, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
				b.Fatal(err)
			}
			next++
		}
	})
	b.Run("plain", func(b *testing.B) {
		s, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), DBFile)})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s)
	})
}
