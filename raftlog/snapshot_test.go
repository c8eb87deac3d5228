package raftlog

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
)

func writeSnapshot(t testing.TB, s *SnapshotStore, index uint64, data []byte) string {
	t.Helper()
	cfg := raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: "10.0.0.1:4242", Suffrage: raft.Voter}}}
	sink, err := s.Create(raft.SnapshotVersionMax, index, 2, cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func readSnapshot(s *SnapshotStore, id string) (*raft.SnapshotMeta, []byte, error) {
	meta, rc, err := s.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return meta, b, err
}

func TestSnapshotRoundTrip(t *testing.T) {
	keys, _ := newKeyring()
	s, err := NewSnapshotStore(t.TempDir(), 2, testOpts(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, n := range []int{0, 10, seal.ChunkSize + 7} {
		ids = append(ids, writeSnapshot(t, s, uint64(10+i), bytes.Repeat([]byte{byte(i)}, n)))
	}
	metas, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 2 || metas[0].ID != ids[2] || metas[1].ID != ids[1] {
		t.Fatalf("List = %v; want newest two of %v", metas, ids)
	}
	if metas[0].Size != seal.ChunkSize+7 || metas[0].Index != 12 || metas[0].Term != 2 {
		t.Fatalf("meta = %+v", metas[0])
	}
	meta, b, err := readSnapshot(s, ids[2])
	if err != nil || meta.Size != int64(len(b)) || len(b) != seal.ChunkSize+7 {
		t.Fatalf("Open = %+v, %d bytes, %v", meta, len(b), err)
	}
	if _, _, err := s.Open(ids[0]); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("Open(reaped) err = %v; want ErrSnapshotNotFound", err)
	}
	// A cancelled snapshot leaves nothing behind.
	sink, err := s.Create(raft.SnapshotVersionMax, 99, 3, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatal(err)
	}
	if metas, _ := s.List(); len(metas) != 2 {
		t.Fatalf("after Cancel List has %d; want 2", len(metas))
	}
}

func TestSnapshotTamper(t *testing.T) {
	keys, _ := newKeyring()
	data := bytes.Repeat([]byte("state "), 3*seal.ChunkSize/6) // 3 full chunks
	tests := []struct {
		name string
		edit func(t *testing.T, path string, b []byte) []byte
		opts func(Options) Options
		want error
	}{
		{"truncated", func(_ *testing.T, _ string, b []byte) []byte { return b[:len(b)-100] }, nil, ErrTampered},
		{"last chunk dropped", func(_ *testing.T, _ string, b []byte) []byte {
			return b[:len(b)-(seal.ChunkSize+16)]
		}, nil, ErrTampered},
		{"trailing bytes", func(_ *testing.T, _ string, b []byte) []byte { return append(b, 1, 2, 3) }, nil, ErrTampered},
		{"appended chunk", func(_ *testing.T, _ string, b []byte) []byte {
			return append(b, b[len(b)-(seal.ChunkSize+16):]...)
		}, nil, ErrTampered},
		{"flipped data byte", func(_ *testing.T, _ string, b []byte) []byte { b[len(b)/2] ^= 1; return b }, nil, ErrTampered},
		{"changed index in meta", func(_ *testing.T, _ string, b []byte) []byte {
			return bytes.Replace(b, []byte(`"Index":7`), []byte(`"Index":8`), 1)
		}, nil, ErrTampered},
		{"changed address in meta", func(_ *testing.T, _ string, b []byte) []byte {
			return bytes.Replace(b, []byte(`10.0.0.1`), []byte(`10.0.0.9`), 1)
		}, nil, ErrTampered},
		{"other cluster", nil, func(o Options) Options { o.ClusterID = "cluster-b"; return o }, ErrTampered},
		{"wrong key", nil, func(o Options) Options { o.Keys = NewKeyring(seal.NewKey()); return o }, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := NewSnapshotStore(dir, 1, testOpts(t, keys))
			if err != nil {
				t.Fatal(err)
			}
			id := writeSnapshot(t, s, 7, data)
			path := s.file(id)
			if tt.edit != nil {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, tt.edit(t, path, b), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			opts := testOpts(t, keys)
			if tt.opts != nil {
				opts = tt.opts(opts)
			}
			s2, err := NewSnapshotStore(dir, 1, opts)
			if err != nil {
				t.Fatal(err)
			}
			meta, b, err := readSnapshot(s2, id)
			var se *SnapshotError
			if !errors.As(err, &se) || !errors.Is(err, tt.want) || se.ID != id {
				t.Fatalf("Open err = %v; want *SnapshotError for %s wrapping %v", err, id, tt.want)
			}
			if meta != nil || b != nil {
				t.Fatal("Open served data despite the error")
			}
		})
	}
}

func TestSnapshotFileSwap(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s, err := NewSnapshotStore(dir, 2, testOpts(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	a := writeSnapshot(t, s, 1, []byte("a"))
	b := writeSnapshot(t, s, 2, []byte("b"))
	ab, _ := os.ReadFile(s.file(a))
	if err := os.WriteFile(s.file(b), ab, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readSnapshot(s, b); !errors.Is(err, ErrTampered) {
		t.Fatalf("Open of swapped file err = %v; want ErrTampered", err)
	}
	if metas, _ := s.List(); len(metas) != 1 || metas[0].ID != a {
		t.Fatalf("List = %v; want only %s (the swapped file skipped)", metas, a)
	}
}

func TestVerifyNamesEveryDamagedSnapshot(t *testing.T) {
	keys, _ := newKeyring()
	dir := t.TempDir()
	s, err := NewSnapshotStore(dir, 3, Options{ClusterID: testCluster, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 2; i++ {
		sink, err := s.Create(raft.SnapshotVersionMax, 10*i, 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write([]byte("state")); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Verify(); err != nil {
		t.Fatalf("intact store: %v", err)
	}
	metas, _ := s.List()
	// Damage the older one: List still shows the newer, Verify names the older.
	path := filepath.Join(s.Dir(), metas[1].ID+snapExt)
	if err := os.Truncate(path, 10); err != nil {
		t.Fatal(err)
	}
	var se *SnapshotError
	if err := s.Verify(); !errors.As(err, &se) || se.Path != path {
		t.Fatalf("got %v; want a *SnapshotError naming %s", err, path)
	}
}
