package raftlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/holdfast/holdfast/internal/seal"
)

func TestKeyFile(t *testing.T) {
	k1, k2, k3 := seal.NewKey(), seal.NewKey(), seal.NewKey()
	good := MarshalKeyFile(KeyFile{Current: k1, Previous: []seal.Key{k2, k3}})
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"current only", MarshalKeyFile(KeyFile{Current: k1}), true},
		{"with previous", good, true},
		{"empty", nil, false},
		{"bad magic", append([]byte("XX"), good[2:]...), false},
		{"bad version", append(append([]byte(keyFileMagic), 2), good[len(keyFileMagic)+1:]...), false},
		{"truncated", good[:len(good)-1], false},
		{"trailing", append(bytes.Clone(good), 0), false},
		{"duplicate", append(MarshalKeyFile(KeyFile{Current: k1}), 0)[:0], false},
	}
	dup := MarshalKeyFile(KeyFile{Current: k1, Previous: []seal.Key{k2}})
	copy(dup[len(dup)-seal.KeySize:], k1.Bytes())
	tests = append(tests, struct {
		name string
		in   []byte
		ok   bool
	}{"previous equals current", dup, false})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kf, err := ParseKeyFile(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseKeyFile err = %v; want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrKeyFile) {
					t.Fatalf("err = %v; want ErrKeyFile", err)
				}
				return
			}
			if got := MarshalKeyFile(kf); !bytes.Equal(got, tt.in) {
				t.Fatal("parse then marshal changed the bytes")
			}
		})
	}
}

func TestSaveLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	kf := KeyFile{Current: seal.NewKey(), Previous: []seal.Key{seal.NewKey()}}
	if err := SaveKeyFile(path, kf); err != nil {
		t.Fatal(err)
	}
	if err := SaveKeyFile(path, KeyFile{}); !errors.Is(err, ErrKeyFile) {
		t.Fatalf("SaveKeyFile(zero) err = %v; want ErrKeyFile", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Current.Equal(kf.Current) || len(got.Previous) != 1 || !got.Previous[0].Equal(kf.Previous[0]) {
		t.Fatal("loaded key file differs")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("dir holds %d entries; want only the key file", len(ents))
	}
	r := got.Keyring()
	if k, ok := r.Lookup(kf.Previous[0].ID()); !ok || !k.Equal(kf.Previous[0]) {
		t.Fatal("Lookup of previous key failed")
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadKeyFile(missing) err = %v; want ErrNotExist", err)
	}
}
