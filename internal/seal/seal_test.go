package seal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"nil", nil, false},
		{"short", make([]byte, KeySize-1), false},
		{"long", make([]byte, KeySize+1), false},
		{"exact", bytes.Repeat([]byte{7}, KeySize), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseKey(%d bytes) err = %v; want ok=%v", len(tt.in), err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrKeySize) {
					t.Fatalf("err = %v; want ErrKeySize", err)
				}
				return
			}
			if !bytes.Equal(k.Bytes(), tt.in) {
				t.Fatalf("Bytes() = %x; want %x", k.Bytes(), tt.in)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	k := NewKey()
	k2, err := ParseKey(k.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != k2.ID() || !k.Equal(k2) {
		t.Fatalf("same key bytes give IDs %v and %v", k.ID(), k2.ID())
	}
	if o := NewKey(); o.ID() == k.ID() || o.Equal(k) {
		t.Fatalf("two new keys share ID %v", k.ID())
	}
	if id := k.ID(); bytes.Contains(k.Bytes(), id[:]) {
		t.Fatalf("ID %v is part of the key bytes", k.ID())
	}
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v", k, k, k)} {
		if bytes.Contains([]byte(s), []byte(fmt.Sprintf("%x", k.Bytes()))) {
			t.Fatalf("formatting a key prints its bytes: %s", s)
		}
	}
	if !(Key{}).IsZero() || k.IsZero() {
		t.Fatal("IsZero wrong")
	}
}

func TestSealOpen(t *testing.T) {
	k, other := NewKey(), NewKey()
	msg := []byte("attack at dawn")
	ad := []byte("position 7")
	sealed := Seal(k, msg, ad)
	if len(sealed) != len(msg)+Overhead {
		t.Fatalf("len(sealed) = %d; want %d", len(sealed), len(msg)+Overhead)
	}
	if again := Seal(k, msg, ad); bytes.Equal(again[:NonceSize], sealed[:NonceSize]) {
		t.Fatal("two seals share a nonce")
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name   string
		key    Key
		sealed []byte
		ad     []byte
		ok     bool
	}{
		{"ok", k, sealed, ad, true},
		{"empty plaintext", k, Seal(k, nil, ad), ad, true},
		{"wrong key", other, sealed, ad, false},
		{"wrong ad", k, sealed, []byte("position 8"), false},
		{"nil ad", k, sealed, nil, false},
		{"flip nonce", k, flip(0), ad, false},
		{"flip ciphertext", k, flip(NonceSize + 1), ad, false},
		{"flip tag", k, flip(len(sealed) - 1), ad, false},
		{"truncated", k, sealed[:len(sealed)-1], ad, false},
		{"too short", k, sealed[:Overhead-1], ad, false},
		{"empty", k, nil, ad, false},
		{"appended", k, append(bytes.Clone(sealed), 0), ad, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := Open(tt.key, tt.sealed, tt.ad)
			if tt.ok {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open err = %v; want ErrOpen", err)
			}
			if pt != nil {
				t.Fatalf("Open returned %d bytes of plaintext with an error", len(pt))
			}
		})
	}
	pt, err := Open(k, sealed, ad)
	if err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("Open = %q, %v; want %q", pt, err, msg)
	}
}

func TestZeroKeyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Seal with the zero Key did not panic")
		}
	}()
	Seal(Key{}, nil, nil)
}
