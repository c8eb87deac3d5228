package backup

import (
	"bytes"
	"io"
	"testing"

	"github.com/holdfast/holdfast/autolock"
)

// FuzzReadHeader: the header decoder never panics, and what it accepts it
// reproduces byte for byte (no two spellings of one header).
func FuzzReadHeader(f *testing.F) {
	h, _, err := ForUnlockKey(autolock.NewKey(), meta(10))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.Bytes())
	hp, _, err := ForPassphrase([]byte("correct horse battery staple"), meta(10), testArgon2)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hp.Bytes())
	f.Add([]byte("HFBACKUP\x01\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := ReadHeader(r)
		if err != nil {
			return
		}
		used := len(b) - r.Len()
		if !bytes.Equal(h.Bytes(), b[:used]) {
			t.Fatalf("header bytes %x differ from the %d bytes read", h.Bytes(), used)
		}
	})
}

// FuzzOpen: a whole file under a fixed key either opens to the data it was
// sealed with or is refused; never partial or other data.
func FuzzOpen(f *testing.F) {
	uk := autolock.NewKey()
	data := []byte("the replicated state")
	h, key, err := ForUnlockKey(uk, meta(len(data)))
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, h, key)
	w.Write(data)
	w.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := ReadHeader(r)
		if err != nil {
			return
		}
		k, err := h.KeyFromUnlockKey(uk)
		if err != nil {
			return
		}
		sr, err := NewReader(r, h, k)
		if err != nil {
			return
		}
		got, err := io.ReadAll(sr)
		if err == nil && !bytes.Equal(got, data) {
			t.Fatalf("opened to %q; want %q", got, data)
		}
	})
}
