package seal

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzKey is fixed so that fuzz inputs derived from the seeds stay meaningful.
var fuzzKey, _ = ParseKey(bytes.Repeat([]byte{0x42}, KeySize))

// FuzzStreamReader feeds arbitrary bytes to a stream reader. It must never
// panic; anything that is not byte-identical to a stream the writer made
// must fail with one of the package's errors (the input bytes are
// authenticated in full: salt via the derived key, chunks via their tags).
func FuzzStreamReader(f *testing.F) {
	ad := []byte("fuzz")
	seeds := map[string][]byte{}
	for _, n := range []int{0, 1, 300, ChunkSize, ChunkSize + 3} {
		var buf bytes.Buffer
		w, err := newWriter(fuzzKey, &buf, ad, bytes.Repeat([]byte{byte(n)}, streamSaltSize))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := w.Write(pattern(n)); err != nil {
			f.Fatal(err)
		}
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		s := buf.Bytes()
		seeds[string(s)] = pattern(n)
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{streamVersion})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(fuzzKey, bytes.NewReader(in), ad)
		if err == nil {
			var got []byte
			got, err = io.ReadAll(r)
			if err == nil {
				want, ok := seeds[string(in)]
				if !ok {
					t.Fatalf("a %d-byte stream not made by the writer opened", len(in))
				}
				if !bytes.Equal(got, want) {
					t.Fatal("seed stream opened to other plaintext")
				}
				return
			}
		}
		if !errors.Is(err, ErrOpen) && !errors.Is(err, ErrTruncated) &&
			!errors.Is(err, ErrTrailingData) && !errors.Is(err, ErrHeader) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
