package raftlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
)

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	keys := NewKeyring(seal.NewKey())
	s, err := Open(dir, testOpts(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	storeN(t, s, 1, 5, "ro")

	// While the writer holds the file (as a running daemon does), a
	// read-only open is refused with ErrInUse.
	if _, err := OpenReadOnly(dir, testOpts(t, keys)); !errors.Is(err, ErrInUse) {
		t.Fatalf("OpenReadOnly on a held file: got %v; want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}

	ro, err := OpenReadOnly(dir, testOpts(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := ro.GetLog(3, &l); err != nil || string(l.Data) != "ro-3" {
		t.Errorf("GetLog(3) = %q, %v; want ro-3", l.Data, err)
	}
	if err := ro.StoreLog(entry(6, "x")); err == nil {
		t.Error("a read-only store accepted a write")
	}
	ro.Close()
	after, _ := os.ReadFile(filepath.Join(dir, DBFile))
	if string(before) != string(after) {
		t.Error("a read-only open changed the bolt file")
	}

	// The wrong DEK opens nothing: not even the sealed log state.
	if _, err = OpenReadOnly(dir, testOpts(t, NewKeyring(seal.NewKey()))); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("OpenReadOnly with another DEK: got %v; want ErrUnknownKey", err)
	}
	if _, err := OpenReadOnly(t.TempDir(), testOpts(t, keys)); err == nil {
		t.Error("OpenReadOnly of a dir without a raft log succeeded")
	}
}
