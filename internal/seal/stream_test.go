package seal

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func sealStream(t testing.TB, k Key, pt, ad []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(k, &buf, ad)
	if err != nil {
		t.Fatal(err)
	}
	// Write in uneven pieces to exercise buffering.
	for p := pt; len(p) > 0; {
		n := min(len(p), 1000+len(p)%7919)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	return buf.Bytes()
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestStreamRoundTrip(t *testing.T) {
	k := NewKey()
	ad := []byte("snapshot 3-17")
	for _, n := range []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 5} {
		pt := pattern(n)
		s := sealStream(t, k, pt, ad)
		if got := StreamSize(int64(n)); got != int64(len(s)) {
			t.Errorf("n=%d: StreamSize = %d; want %d", n, got, len(s))
		}
		if got, err := StreamPlaintextSize(int64(len(s))); err != nil || got != int64(n) {
			t.Errorf("n=%d: StreamPlaintextSize = %d, %v; want %d", n, got, err, n)
		}
		r, err := NewReader(k, bytes.NewReader(s), ad)
		if err != nil {
			t.Fatalf("n=%d: NewReader: %v", n, err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("n=%d: ReadAll: %v", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("n=%d: round trip changed the plaintext", n)
		}
	}
}

func TestStreamRejects(t *testing.T) {
	k := NewKey()
	ad := []byte("ad")
	three := sealStream(t, k, pattern(2*ChunkSize+10), ad) // chunks: full, full, 10
	two := sealStream(t, k, pattern(2*ChunkSize), ad)      // chunks: full, full(last)
	empty := sealStream(t, k, nil, ad)
	h, c := StreamHeaderSize, encChunkSize
	chunk := func(s []byte, i int) []byte { return s[h+i*c : min(len(s), h+(i+1)*c)] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hdr := three[:h]
	flip := func(s []byte, i int) []byte { s = bytes.Clone(s); s[i] ^= 0x80; return s }
	// A stream whose last chunk is empty although it is not the first,
	// sealed correctly with the stream key: writers never make one.
	emptyLast := func() []byte {
		a := streamKey(k, two[0], two[1:h], ad)
		var n chunkNonce
		out := bytes.Clone(two[:h])
		for i, p := range [][]byte{pattern(ChunkSize), pattern(ChunkSize), nil} {
			n.set(uint64(i), i == 2)
			out = a.Seal(out, n[:], p, nil)
		}
		return out
	}()
	tests := []struct {
		name string
		in   []byte
		key  Key
		ad   []byte
		want error
	}{
		{"no header", nil, k, ad, ErrHeader},
		{"short header", three[:h-1], k, ad, ErrHeader},
		{"bad version", flip(three, 0), k, ad, ErrHeader},
		{"header only", hdr, k, ad, ErrTruncated},
		{"wrong key", three, NewKey(), ad, ErrOpen},
		{"wrong ad", three, k, []byte("ae"), ErrOpen},
		{"flipped salt", flip(three, 1), k, ad, ErrOpen},
		{"flipped chunk 0", flip(three, h+5), k, ad, ErrOpen},
		{"flipped last chunk", flip(three, len(three)-1), k, ad, ErrOpen},
		{"missing last chunk", cat(hdr, chunk(three, 0), chunk(three, 1)), k, ad, ErrTruncated},
		{"missing last chunk of full stream", cat(two[:h], chunk(two, 0)), k, ad, ErrTruncated},
		{"last chunk cut", three[:len(three)-1], k, ad, ErrOpen},
		{"last chunk cut to short", three[:len(three)-10], k, ad, ErrOpen},
		{"reordered", cat(hdr, chunk(three, 1), chunk(three, 0), chunk(three, 2)), k, ad, ErrOpen},
		{"duplicated", cat(hdr, chunk(three, 0), chunk(three, 0), chunk(three, 1), chunk(three, 2)), k, ad, ErrOpen},
		{"dropped middle", cat(hdr, chunk(three, 0), chunk(three, 2)), k, ad, ErrOpen},
		{"trailing byte", cat(three, []byte{0}), k, ad, ErrOpen},
		{"trailing byte after full last", cat(two, []byte{0}), k, ad, ErrTrailingData},
		{"appended chunk", cat(three, chunk(three, 2)), k, ad, ErrOpen},
		{"appended chunk after full last", cat(two, chunk(two, 1)), k, ad, ErrTrailingData},
		{"empty last chunk after full", emptyLast, k, ad, ErrOpen},
		{"empty stream trailing", cat(empty, []byte{1, 2}), k, ad, ErrOpen},
		{"empty stream truncated", empty[:len(empty)-1], k, ad, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			r, err := NewReader(key, bytes.NewReader(tt.in), tt.ad)
			if err == nil {
				_, err = io.ReadAll(r)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v; want %v", err, tt.want)
			}
			if r != nil {
				// Errors are sticky.
				if _, err2 := r.Read(make([]byte, 1)); !errors.Is(err2, tt.want) {
					t.Fatalf("second Read err = %v; want %v", err2, tt.want)
				}
			}
		})
	}
}

func TestStreamWriteError(t *testing.T) {
	errDisk := errors.New("disk full")
	tests := []struct {
		name    string
		okBytes int
	}{
		{"header", 0},
		{"chunk", StreamHeaderSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw := &failWriter{ok: tt.okBytes, err: errDisk}
			w, err := NewWriter(NewKey(), fw, nil)
			if err == nil {
				if _, err = w.Write(pattern(ChunkSize + 1)); err == nil {
					err = w.Close()
				}
			}
			if !errors.Is(err, errDisk) {
				t.Fatalf("err = %v; want %v", err, errDisk)
			}
		})
	}
}

type failWriter struct {
	ok  int
	err error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.ok {
		return 0, f.err
	}
	f.ok -= len(p)
	return len(p), nil
}
