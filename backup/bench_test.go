package backup

import (
	"bytes"
	"io"
	"testing"

	"github.com/holdfast/holdfast/autolock"
)

// BenchmarkSeal and BenchmarkOpen measure backup throughput on a 4 MiB
// state (MB/s); BenchmarkKeyDerivation what each way of keying a backup
// costs per save or restore.
func BenchmarkSeal(b *testing.B) {
	data := bytes.Repeat([]byte("state "), (4<<20)/6)
	uk := autolock.NewKey()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		h, key, err := ForUnlockKey(uk, meta(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		w, _ := NewWriter(io.Discard, h, key)
		w.Write(data)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	data := bytes.Repeat([]byte("state "), (4<<20)/6)
	uk := autolock.NewKey()
	h, key, _ := ForUnlockKey(uk, meta(len(data)))
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, h, key)
	w.Write(data)
	w.Close()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r := bytes.NewReader(buf.Bytes())
		h, err := ReadHeader(r)
		if err != nil {
			b.Fatal(err)
		}
		k, err := h.KeyFromUnlockKey(uk)
		if err != nil {
			b.Fatal(err)
		}
		sr, _ := NewReader(r, h, k)
		if _, err := io.Copy(io.Discard, sr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyDerivation(b *testing.B) {
	b.Run("unlock-key-hkdf", func(b *testing.B) {
		uk := autolock.NewKey()
		for b.Loop() {
			uk.BackupKey(make([]byte, SaltSize))
		}
	})
	b.Run("passphrase-argon2id-default", func(b *testing.B) {
		for b.Loop() {
			argonKey([]byte("correct horse battery staple"), make([]byte, SaltSize), DefaultArgon2)
		}
	})
}
