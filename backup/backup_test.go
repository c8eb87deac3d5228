package backup

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/seal"
)

// testArgon2 keeps the tests fast; the bounds still apply.
var testArgon2 = Argon2Params{Time: 1, MemoryKiB: minArgonMemoryKiB, Threads: 1}

const canary = "CANARY-backup-5f0c1e"

func seal1(t *testing.T, h *Header, key seal.Key, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != h.FileSize() {
		t.Errorf("file is %d bytes; FileSize says %d", buf.Len(), h.FileSize())
	}
	return buf.Bytes()
}

// open reads a whole backup with the unlock key or the passphrase.
func open(b []byte, uk *autolock.Key, pass []byte) ([]byte, error) {
	r := bytes.NewReader(b)
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	var key seal.Key
	if uk != nil {
		key, err = h.KeyFromUnlockKey(*uk)
	} else {
		key, err = h.KeyFromPassphrase(pass)
	}
	if err != nil {
		return nil, err
	}
	sr, err := NewReader(r, h, key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(sr)
}

func testData() []byte {
	// More than one chunk, with the canary at both ends.
	return []byte(canary + strings.Repeat("x", seal.ChunkSize+100) + canary)
}

func meta(size int) Meta {
	return Meta{ClusterID: "c1", Index: 42, Term: 3, CreatedAt: time.Unix(1700000000, 0).UTC(), Size: int64(size)}
}

func TestRoundTrip(t *testing.T) {
	data := testData()
	uk := autolock.NewKey()
	pass := []byte("correct horse battery staple")
	hk, kk, err := ForUnlockKey(uk, meta(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	hp, kp, err := ForPassphrase(pass, meta(len(data)), testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	other := autolock.NewKey()
	tests := []struct {
		name    string
		file    []byte
		uk      *autolock.Key
		pass    []byte
		wantErr error
	}{
		{"unlock key", seal1(t, hk, kk, data), &uk, nil, nil},
		{"passphrase", seal1(t, hp, kp, data), nil, pass, nil},
		{"wrong unlock key", seal1(t, hk, kk, data), &other, nil, ErrWrongKey},
		{"wrong passphrase", seal1(t, hp, kp, data), nil, []byte("incorrect horse battery"), ErrWrongKey},
		{"passphrase for a key file", seal1(t, hk, kk, data), nil, pass, ErrWrongKey},
		{"key for a passphrase file", seal1(t, hp, kp, data), &uk, nil, ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := open(tt.file, tt.uk, tt.pass)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v; want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !bytes.Equal(got, data) {
				t.Errorf("got %d bytes back; want the %d written", len(got), len(data))
			}
			for _, enc := range []string{canary, hex.EncodeToString([]byte(canary)), base64.StdEncoding.EncodeToString([]byte(canary))[:16]} {
				if bytes.Contains(tt.file, []byte(enc)) {
					t.Errorf("the sealed file contains %q in the clear", enc)
				}
			}
		})
	}
}

// TestEveryByteFlipRefused flips each byte of a small backup in turn (and
// samples a large one): every flip is refused, none yields data.
func TestEveryByteFlipRefused(t *testing.T) {
	uk := autolock.NewKey()
	for _, data := range [][]byte{[]byte(canary), testData()} {
		h, key, err := ForUnlockKey(uk, meta(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		file := seal1(t, h, key, data)
		step := 1
		if len(file) > 4096 {
			step = 97
		}
		for i := 0; i < len(file); i += step {
			bad := bytes.Clone(file)
			bad[i] ^= 0x01
			if _, err := open(bad, &uk, nil); err == nil {
				t.Fatalf("a flipped byte at offset %d of %d was not refused", i, len(file))
			} else if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrWrongKey) && !errors.Is(err, ErrTampered) {
				t.Fatalf("flip at %d: error %v is none of ErrFormat, ErrWrongKey, ErrTampered", i, err)
			}
		}
		for _, cut := range []int{len(file) - 1, len(file) - 17, len(h.raw) + 10} {
			if _, err := open(file[:cut], &uk, nil); !errors.Is(err, ErrTampered) {
				t.Errorf("truncated to %d of %d bytes: got %v; want ErrTampered", cut, len(file), err)
			}
		}
		if _, err := open(append(bytes.Clone(file), 0), &uk, nil); !errors.Is(err, ErrTampered) {
			t.Errorf("one byte appended: got %v; want ErrTampered", err)
		}
	}
}

func TestRefusals(t *testing.T) {
	if _, _, err := ForPassphrase([]byte("short"), meta(1), testArgon2); !errors.Is(err, ErrWeakPassphrase) {
		t.Errorf("short passphrase: got %v; want ErrWeakPassphrase", err)
	}
	if _, _, err := ForPassphrase([]byte("long enough passphrase"), meta(1), Argon2Params{Time: 1, MemoryKiB: 1 << 30, Threads: 1}); err == nil {
		t.Error("an absurd Argon2 memory cost was accepted")
	}
	h, key, err := ForUnlockKey(autolock.NewKey(), meta(3))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(io.Discard, h, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("toolong")); err == nil {
		t.Error("writing more than the header's size was accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("closing short of the header's size was accepted")
	}
	if _, err := ReadHeader(strings.NewReader("HFSNAP\x01 not a backup at all, really not")); !errors.Is(err, ErrFormat) {
		t.Errorf("a raft snapshot file: got %v; want ErrFormat", err)
	}
}
