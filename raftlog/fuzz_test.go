package raftlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
)

var fuzzKey, _ = seal.ParseKey(bytes.Repeat([]byte{0x24}, seal.KeySize))

// FuzzOpenRecord feeds arbitrary stored records to the decoder: it never
// panics; parse-then-marshal reproduces a parsed record byte for byte;
// and nothing but an untouched sealed record opens.
func FuzzOpenRecord(f *testing.F) {
	keys := NewKeyring(fuzzKey)
	good := sealEntry(fuzzKey, testCluster, &raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("hello"), Extensions: []byte("x")})
	f.Add(good.Data, uint64(5), uint64(2), uint8(raft.LogCommand))
	f.Add([]byte{recordVersion}, uint64(1), uint64(1), uint8(0))
	f.Add([]byte{}, uint64(0), uint64(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, index, term uint64, typ uint8) {
		rec, err := parseRecord(data)
		if err == nil && !bytes.Equal(rec.marshal(), data) {
			t.Fatal("parse then marshal changed the bytes")
		}
		raw := &raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Data: data}
		var l raft.Log
		err = openEntry(keys, testCluster, index, raw, &l)
		if err == nil {
			// Only a record sealed by sealEntry opens (the seed's nonce
			// differs between fuzz workers, so compare what it holds).
			if string(l.Data) != "hello" || string(l.Extensions) != "x" || index != 5 || term != 2 || typ != uint8(raft.LogCommand) {
				t.Fatalf("a record that is not the sealed one opened: %+v", l)
			}
			return
		}
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzParseKeyFile: never panics; parse-then-marshal reproduces the input.
func FuzzParseKeyFile(f *testing.F) {
	f.Add(MarshalKeyFile(KeyFile{Current: fuzzKey}))
	k2, _ := seal.ParseKey(bytes.Repeat([]byte{0x25}, seal.KeySize))
	f.Add(MarshalKeyFile(KeyFile{Current: fuzzKey, Previous: []seal.Key{k2}}))
	f.Add([]byte(keyFileMagic))
	f.Fuzz(func(t *testing.T, in []byte) {
		kf, err := ParseKeyFile(in)
		if err != nil {
			if !errors.Is(err, ErrKeyFile) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !bytes.Equal(MarshalKeyFile(kf), in) {
			t.Fatal("parse then marshal changed the bytes")
		}
	})
}

// FuzzReadWAL feeds arbitrary files to the WAL reader: it never panics,
// fails only with ErrTampered, and what it returns are records with
// consecutive indexes that encode back to the bytes they were read from;
// in a version 3 file, each batch's records are followed by a trailer
// that opens and names the batch's last entry.
func FuzzReadWAL(f *testing.F) {
	keys := NewKeyring(fuzzKey)
	sealer := newStore(f.TempDir(), Options{ClusterID: testCluster, Keys: keys})
	file := func(gen uint64, logs ...*raft.Log) []byte {
		b := make([]byte, walDataStart)
		copy(b, walHeader(gen, make([]byte, walClaimSize)))
		for i, l := range logs {
			b = appendWALRecord(b, gen, l, i == len(logs)-1)
		}
		return b
	}
	e1 := sealEntry(fuzzKey, testCluster, &raft.Log{Index: 7, Term: 2, Type: raft.LogCommand, Data: []byte("a")})
	e2 := sealEntry(fuzzKey, testCluster, &raft.Log{Index: 8, Term: 2, Type: raft.LogConfiguration, Data: []byte("b")})
	f.Add(file(1))
	f.Add(file(3, e1, e2))
	f.Add(file(3, e1, e2)[:walDataStart+walRecordHeaderSize+4])
	f.Add([]byte(walMagic))
	f.Add([]byte(walMagic[:3]))
	// Version 3 files as the Store writes them: two and three batches.
	dir := f.TempDir()
	s, err := Open(dir, Options{ClusterID: testCluster, Keys: keys})
	if err != nil {
		f.Fatal(err)
	}
	s.flushMu.Lock() // the batches stay in the WAL
	for i := uint64(1); i <= 3; i++ {
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}}}); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, WALFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:walDataStart+4*walSector])
	}
	s.flushMu.Unlock()
	_ = s.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := readWAL(in, sealer.openTrailer)
		gen, logs := c.gen, c.logs
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if len(c.offs) != len(logs) {
			t.Fatalf("%d records but %d offsets", len(logs), len(c.offs))
		}
		batches := 0
		for i, l := range logs {
			if i > 0 && l.Index != logs[i-1].Index+1 {
				t.Fatalf("indexes %d then %d", logs[i-1].Index, l.Index)
			}
			off := c.offs[i]
			rec := appendWALRecord(nil, gen, l, in[off] == walMarkLast)
			if !bytes.Equal(rec, in[off:off+len(rec)]) {
				t.Fatal("a record does not encode back to the bytes it was read from")
			}
			if c.version != 3 || in[off] != walMarkLast {
				continue
			}
			batches++
			pos := walTrailerPos(int64(off + len(rec)))
			tr, err := sealer.openTrailer(gen, uint64(batches), pos, in[pos:pos+walTrailerSize])
			if err != nil || tr != c.trailers[batches] || tr.last != l.Index || tr.lastTerm != l.Term {
				t.Fatalf("batch %d ends at entry %d, but its trailer reads %+v, %v", batches, l.Index, tr, err)
			}
		}
		if c.version == 3 && len(c.trailers) > 0 && len(c.trailers) != batches+1 {
			t.Fatalf("%d trailers for %d batches", len(c.trailers), batches)
		}
		if c.version != 3 && len(c.trailers) != 0 {
			t.Fatalf("version %d file with trailers", c.version)
		}
	})
}

// FuzzParseWALTrailer feeds arbitrary plaintexts to the trailer decoder:
// it never panics, fails only with ErrTampered, and what it accepts
// marshals back to the same bytes.
func FuzzParseWALTrailer(f *testing.F) {
	f.Add(walTrailer{last: 9, lastTerm: 2, state: trailerFollowed}.marshal())
	f.Add(make([]byte, walTrailerPlain))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := parseWALTrailer(in)
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !bytes.Equal(tr.marshal(), in) {
			t.Fatal("parse then marshal changed the bytes")
		}
	})
}

// FuzzDecodeLogValue feeds arbitrary bolt values to the log entry decoder:
// it never panics, fails only with ErrTampered, and what it decodes
// encodes and decodes again to the same entry.
func FuzzDecodeLogValue(f *testing.F) {
	encode := func(l *raft.Log) []byte {
		var out []byte
		if err := codec.NewEncoderBytes(&out, encodeHandle).Encode(l); err != nil {
			f.Fatal(err)
		}
		return out
	}
	for _, l := range sampleLogs() {
		f.Add(encode(l))
	}
	f.Add(encode(sealEntry(fuzzKey, testCluster, &raft.Log{Index: 7, Term: 2, Type: raft.LogCommand, Data: []byte("a")})))
	f.Add([]byte{0x86})
	f.Fuzz(func(t *testing.T, in []byte) {
		var l raft.Log
		if err := decodeLogValue(in, &l); err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		var again raft.Log
		if err := decodeLogValue(encode(&l), &again); err != nil {
			t.Fatalf("decode of a re-encoded entry: %v", err)
		}
		if again.Index != l.Index || again.Term != l.Term || again.Type != l.Type || !bytes.Equal(again.Data, l.Data) || !bytes.Equal(again.Extensions, l.Extensions) || !again.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("not stable: %+v then %+v", l, again)
		}
	})
}

// FuzzParseLogState feeds arbitrary plaintexts to the log state decoder:
// it never panics, fails only with ErrTampered, and what it accepts
// marshals back to the same bytes.
func FuzzParseLogState(f *testing.F) {
	f.Add(logState{}.marshal())
	f.Add(logState{floor: 3, runs: []run{{3, 10}, {20, 25}}, lastTerm: 4, values: []string{"CurrentTerm", "LastVoteCand"}}.marshal())
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := parseLogState(in)
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !bytes.Equal(st.marshal(), in) {
			t.Fatal("parse then marshal changed the bytes")
		}
	})
}
