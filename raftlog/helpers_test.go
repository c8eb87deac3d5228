package raftlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
	"go.etcd.io/bbolt"
)

const testCluster = "cluster-a"

func testOpts(t testing.TB, keys *Keyring) Options {
	t.Helper()
	return Options{ClusterID: testCluster, Keys: keys}
}

func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func entry(i uint64, data string) *raft.Log {
	return &raft.Log{Index: i, Term: 1 + i/10, Type: raft.LogCommand, Data: []byte(data)}
}

func storeN(t testing.TB, s *Store, from, to uint64, prefix string) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, entry(i, fmt.Sprintf("%s-%d", prefix, i)))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

// rawValues returns the stored bolt values of the logs bucket, by index.
func rawValues(t testing.TB, path string) map[uint64][]byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[uint64][]byte{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("logs")).ForEach(func(k, v []byte) error {
			var idx uint64
			for _, b := range k {
				idx = idx<<8 | uint64(b)
			}
			out[idx] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editValues lets f change the stored values of the logs bucket.
func editValues(t testing.TB, path string, f func(get func(uint64) []byte, put func(uint64, []byte))) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("logs"))
		key := func(i uint64) []byte {
			k := make([]byte, 8)
			for j := 7; j >= 0; j-- {
				k[j] = byte(i)
				i >>= 8
			}
			return k
		}
		f(func(i uint64) []byte { return bytes.Clone(b.Get(key(i))) },
			func(i uint64, v []byte) {
				if err := b.Put(key(i), v); err != nil {
					t.Fatal(err)
				}
			})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dirFiles returns the contents of every regular file under dir.
func dirFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newKeyring() (*Keyring, seal.Key) {
	k := seal.NewKey()
	return NewKeyring(k), k
}

// walHeader encodes a header of the previous releases: version 2 with
// its claim, or version 1 when claim is nil.
func walHeader(gen uint64, claim []byte) []byte {
	h := make([]byte, 0, walHeaderSize+len(claim))
	if claim == nil {
		h = append(h, walMagicV1...)
	} else {
		h = append(h, walMagicV2...)
	}
	h = binary.BigEndian.AppendUint64(h, gen)
	h = binary.BigEndian.AppendUint32(h, crc32.Checksum(h, walCRC))
	return append(h, claim...)
}

// sealClaim seals a version 2 WAL's claim, as the previous release did
// with every batch.
func (s *Store) sealClaim(gen, prevLast, last, lastTerm uint64) []byte {
	return s.bd.seal(s.keys.Current(), walClaimADLabel, binary.BigEndian.AppendUint64(nil, gen), claimPlain(prevLast, last, lastTerm))
}

// walTrailerOffs returns where the trailers T_0..T_r of the intact
// batches of the version 3 WAL in b lie, with what they say.
func walTrailerOffs(t testing.TB, s *Store, b []byte) ([]int64, []walTrailer) {
	t.Helper()
	c, err := readWAL(b, s.openTrailer)
	if err != nil || c.version != 3 {
		t.Fatalf("read WAL: version %d, %v", c.version, err)
	}
	offs := []int64{walTrailer0Off}
	for i, off := range c.offs {
		if b[off] == walMarkLast {
			offs = append(offs, walTrailerPos(int64(off+walRecordHeaderSize+walEntryFixed+len(c.logs[i].Data))))
		}
	}
	if len(offs) != len(c.trailers) {
		t.Fatalf("%d batches but %d trailers", len(offs)-1, len(c.trailers))
	}
	return offs, c.trailers
}
