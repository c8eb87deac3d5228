package raftlog

import (
	"bytes"
	"errors"
	"testing"

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
