package raftlog

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
)

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	keys, _ := newKeyring()
	s := openStore(t, dir, testOpts(t, keys))
	now := time.Unix(1700000000, 123456789)
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("cfg"), AppendedAt: now},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("cmd"), Extensions: []byte("ext")},
		{Index: 3, Term: 2, Type: raft.LogNoop},
		{Index: 4, Term: 2, Type: raft.LogCommand, Extensions: []byte("only ext")},
	}
	orig := make([]raft.Log, len(logs))
	for i, l := range logs {
		orig[i] = *l
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for i, l := range logs {
		if !reflect.DeepEqual(*l, orig[i]) {
			t.Fatalf("StoreLogs modified its input: %+v", *l)
		}
	}
	check := func(s *Store) {
		t.Helper()
		for _, want := range orig {
			var got raft.Log
			if err := s.GetLog(want.Index, &got); err != nil {
				t.Fatalf("GetLog(%d): %v", want.Index, err)
			}
			if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
				!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
				!got.AppendedAt.Equal(want.AppendedAt) {
				t.Fatalf("GetLog(%d) = %+v; want %+v", want.Index, got, want)
			}
		}
		if first, err := s.FirstIndex(); err != nil || first != 1 {
			t.Fatalf("FirstIndex = %d, %v; want 1", first, err)
		}
		if last, err := s.LastIndex(); err != nil || last != 4 {
			t.Fatalf("LastIndex = %d, %v; want 4", last, err)
		}
	}
	check(s)
	var l raft.Log
	if err := s.GetLog(9, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(9) err = %v; want ErrLogNotFound", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(1, &l); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetLog after Close err = %v; want ErrClosed", err)
	}
	s2 := openStore(t, dir, testOpts(t, keys))
	check(s2)
	if v, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("GetUint64 = %d, %v; want 7", v, err)
	}
	if _, err := s2.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("Get(missing) err = %v; want raft-boltdb's \"not found\"", err)
	}
	if err := s2.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	if first, _ := s2.FirstIndex(); first != 3 {
		t.Fatalf("FirstIndex after DeleteRange = %d; want 3", first)
	}
}

func TestOptionsValidate(t *testing.T) {
	keys, _ := newKeyring()
	tests := []struct {
		name string
		opts Options
	}{
		{"no cluster", Options{Keys: keys}},
		{"no keys", Options{ClusterID: "c"}},
		{"zero key", Options{ClusterID: "c", Keys: NewKeyring(seal.Key{})}},
		{"long cluster", Options{ClusterID: strings.Repeat("c", 1<<16), Keys: keys}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(t.TempDir(), tt.opts); err == nil {
				t.Fatal("Open succeeded")
			}
			if _, err := NewSnapshotStore(t.TempDir(), 1, tt.opts); err == nil {
				t.Fatal("NewSnapshotStore succeeded")
			}
		})
	}
}

// TestTamper changes stored records directly in bolt; GetLog must return a
// *RecordError naming the index, never a changed entry.
func TestTamper(t *testing.T) {
	keys, _ := newKeyring()
	tests := []struct {
		name  string
		edit  func(get func(uint64) []byte, put func(uint64, []byte))
		opts  func(Options) Options
		index uint64
		want  error
	}{
		{"flip ciphertext byte", func(get func(uint64) []byte, put func(uint64, []byte)) {
			v := get(3)
			i := bytes.Index(v, []byte{recordVersion})
			v[len(v)/2] ^= 0x01
			_ = i
			put(3, v)
		}, nil, 3, ErrTampered},
		{"swap two entries", func(get func(uint64) []byte, put func(uint64, []byte)) {
			a, b := get(3), get(5)
			put(3, b)
			put(5, a)
		}, nil, 3, ErrTampered},
		{"copy entry to other index", func(get func(uint64) []byte, put func(uint64, []byte)) {
			put(4, get(2))
		}, nil, 4, ErrTampered},
		{"garbage value", func(_ func(uint64) []byte, put func(uint64, []byte)) {
			put(2, []byte{0xde, 0xad})
		}, nil, 2, ErrTampered},
		{"other cluster", nil, func(o Options) Options { o.ClusterID = "cluster-b"; return o }, 1, ErrTampered},
		{"wrong key", nil, func(o Options) Options { o.Keys = NewKeyring(seal.NewKey()); return o }, 1, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, testOpts(t, keys))
			storeN(t, s, 1, 6, "v")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.edit != nil {
				editValues(t, s.Path(), tt.edit)
			}
			opts := testOpts(t, keys)
			if tt.opts != nil {
				opts = tt.opts(opts)
			}
			s2, err := Open(dir, opts)
			if err != nil {
				// Another cluster's or key's store does not get past the
				// sealed log state: refused at open, naming the file.
				if tt.opts == nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), s.Path()) || !strings.Contains(err.Error(), "rejoin") {
					t.Fatalf("Open: %v; want an error naming %s wrapping %v and saying what to do", err, s.Path(), tt.want)
				}
				return
			}
			t.Cleanup(func() { _ = s2.Close() })
			var l raft.Log
			err = s2.GetLog(tt.index, &l)
			var re *RecordError
			if !errors.As(err, &re) || !errors.Is(err, tt.want) {
				t.Fatalf("GetLog(%d) err = %v; want *RecordError wrapping %v", tt.index, err, tt.want)
			}
			if re.Index != tt.index || re.Path != s2.Path() {
				t.Fatalf("RecordError names %s entry %d; want %s entry %d", re.Path, re.Index, s2.Path(), tt.index)
			}
			if !strings.Contains(err.Error(), "join again") {
				t.Fatalf("error %q does not say what to do", err)
			}
			if l.Data != nil || l.Index != 0 {
				t.Fatalf("GetLog filled the log despite the error: %+v", l)
			}
		})
	}
}

// TestTamperEveryByte flips each byte of one stored value in turn: GetLog
// must fail or return exactly the original entry (a flip in a msgpack
// field name that decoding ignores changes nothing served).
func TestTamperEveryByte(t *testing.T) {
	dir := t.TempDir()
	keys, _ := newKeyring()
	s := openStore(t, dir, testOpts(t, keys))
	want := &raft.Log{Index: 2, Term: 3, Type: raft.LogCommand, Data: []byte("secret-ish"),
		Extensions: []byte("x"), AppendedAt: time.Unix(1700000000, 5)}
	if err := s.StoreLogs([]*raft.Log{entry(1, "a"), want}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	orig := rawValues(t, s.Path())[2]
	detected := 0
	for i := range orig {
		editValues(t, s.Path(), func(_ func(uint64) []byte, put func(uint64, []byte)) {
			v := bytes.Clone(orig)
			v[i] ^= 0x04
			put(2, v)
		})
		s2, err := Open(dir, testOpts(t, keys))
		if err != nil {
			// A flip in the last entry's term is caught by the log state.
			if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), s.Path()) {
				t.Fatalf("byte %d: Open: %v; want ErrRolledBack naming %s", i, err, s.Path())
			}
			detected++
			continue
		}
		var got raft.Log
		err = s2.GetLog(2, &got)
		_ = s2.Close()
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) || re.Index != 2 {
				t.Fatalf("byte %d: err = %v; want *RecordError for entry 2", i, err)
			}
			detected++
			continue
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("byte %d: served a changed entry %+v", i, got)
		}
	}
	if detected < len(orig)*3/4 {
		t.Fatalf("only %d of %d byte flips detected", detected, len(orig))
	}
}

func TestNeedsRotation(t *testing.T) {
	dir := t.TempDir()
	keys, _ := newKeyring()
	opts := testOpts(t, keys)
	opts.RotationThreshold = 100
	s := openStore(t, dir, opts)
	storeN(t, s, 1, 60, "a")
	if s.NeedsRotation() || s.SealedCount() != 60 {
		t.Fatalf("after 60: NeedsRotation = %v, count %d; want false, 60", s.NeedsRotation(), s.SealedCount())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, opts)
	if got := s.SealedCount(); got < 60 || got > 70 {
		t.Fatalf("count after reopen = %d; want 60..70 (conservative)", got)
	}
	storeN(t, s, 61, 100, "b")
	if !s.NeedsRotation() {
		t.Fatalf("after 100: NeedsRotation = false (count %d)", s.SealedCount())
	}
	kf := t.TempDir() + "/keys"
	if err := SaveKeyFile(kf, keys.KeyFile()); err != nil {
		t.Fatal(err)
	}
	if err := (Rotator{KeyFile: kf, Store: s}).Rotate(t.Context(), seal.NewKey()); err != nil {
		t.Fatal(err)
	}
	// Re-sealing 100 records counts against the new key too.
	if s.SealedCount() != 100 || !s.NeedsRotation() {
		t.Fatalf("after rotation: count %d", s.SealedCount())
	}
}
