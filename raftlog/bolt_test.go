package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

func sampleLogs() []*raft.Log {
	at := time.Date(2026, 11, 24, 9, 0, 0, 123456789, time.UTC)
	return []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("conf"), AppendedAt: at},
		{Index: 2, Term: 1, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: bytes.Repeat([]byte{0xa5}, 9000), AppendedAt: at.Add(time.Second)},
		{Index: 4, Term: 2, Type: raft.LogCommand, Data: []byte{1}, Extensions: []byte("ext"), AppendedAt: at.Local()},
		{Index: 300, Term: 7, Type: raft.LogBarrier, AppendedAt: time.Unix(0, 1)},
	}
}

// bucketValues returns every key and value in the file's buckets.
func bucketValues(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[fmt.Sprintf("%s/%x", name, k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBoltLogIsRaftBoltDBByteForByte: the bolt layer writes what
// raft-boltdb writes, byte for byte, and each reads the other's file.
func TestBoltLogIsRaftBoltDBByteForByte(t *testing.T) {
	dir := t.TempDir()
	theirsPath, oursPath := filepath.Join(dir, "theirs.db"), filepath.Join(dir, "ours.db")
	theirs, err := raftboltdb.New(raftboltdb.Options{Path: theirsPath})
	if err != nil {
		t.Fatal(err)
	}
	ours, err := openBolt(oursPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []interface {
		StoreLogs([]*raft.Log) error
		Set(k, v []byte) error
		SetUint64(k []byte, v uint64) error
	}{theirs, ours} {
		if err := s.StoreLogs(sampleLogs()); err != nil {
			t.Fatal(err)
		}
		if err := s.Set([]byte("LastVoteCand"), []byte("node-a")); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
			t.Fatal(err)
		}
	}
	theirs.Close()
	ours.Close()
	a, b := bucketValues(t, theirsPath), bucketValues(t, oursPath)
	if len(a) != len(sampleLogs())+2 || !reflect.DeepEqual(a, b) {
		t.Fatalf("the files differ:\nraft-boltdb %q\nours        %q", a, b)
	}

	// Each reads the other's file.
	theirs, err = raftboltdb.New(raftboltdb.Options{Path: oursPath})
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	ours, err = openBolt(theirsPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	for _, want := range sampleLogs() {
		var x, y raft.Log
		if err := theirs.GetLog(want.Index, &x); err != nil {
			t.Fatal(err)
		}
		if err := ours.GetLog(want.Index, &y); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, y) || !bytes.Equal(y.Data, want.Data) || !y.AppendedAt.Equal(want.AppendedAt) {
			t.Errorf("entry %d: raft-boltdb reads %+v, ours %+v", want.Index, x, y)
		}
	}
	for _, s := range []raft.StableStore{theirs, ours} {
		if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-a" {
			t.Errorf("Get = %q, %v", v, err)
		}
		if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
			t.Errorf("GetUint64 = %d, %v", v, err)
		}
	}
}

// TestBoltLogOperations: indexes, deletion, and what is missing.
func TestBoltLogOperations(t *testing.T) {
	path := filepath.Join(t.TempDir(), DBFile)
	b, err := openBolt(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := b.FirstIndex()
	last, _ := b.LastIndex()
	if first != 0 || last != 0 {
		t.Fatalf("empty store: first %d, last %d", first, last)
	}
	if err := b.StoreLogs(sampleLogs()); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteRange(2, 4); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := b.GetLog(3, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog of a deleted entry: %v", err)
	}
	first, _ = b.FirstIndex()
	last, _ = b.LastIndex()
	if first != 1 || last != 300 {
		t.Errorf("after DeleteRange(2, 4): first %d, last %d; want 1, 300", first, last)
	}
	if _, err := b.Get([]byte("nothing")); err != raftboltdb.ErrKeyNotFound {
		t.Errorf("Get of a missing key: %v, want raft-boltdb's ErrKeyNotFound", err)
	}
	if err := b.Set([]byte("CurrentTerm"), []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetUint64([]byte("CurrentTerm")); !errors.Is(err, ErrTampered) {
		t.Errorf("GetUint64 of 2 bytes: %v, want ErrTampered", err)
	}

	// What GetLog returns is the caller's: it outlives the file's mapping.
	if err := b.GetLog(300, &l); err != nil {
		t.Fatal(err)
	}
	var big raft.Log
	if err := b.StoreLogs([]*raft.Log{sampleLogs()[2]}); err != nil {
		t.Fatal(err)
	}
	if err := b.GetLog(3, &big); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Term != 7 || !bytes.Equal(big.Data, sampleLogs()[2].Data) {
		t.Errorf("after Close: entry 300 term %d, entry 3 data intact %v", l.Term, bytes.Equal(big.Data, sampleLogs()[2].Data))
	}
}
