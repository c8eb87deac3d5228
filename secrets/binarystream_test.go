package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// chunkRecorder keeps what is written to it and the size of each write;
// it fails the write numbered failAt (from 1), if set.
type chunkRecorder struct {
	buf    bytes.Buffer
	writes []int
	failAt int
}

var errWrite = errors.New("disk full")

func (c *chunkRecorder) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	if len(c.writes) == c.failAt {
		return 0, errWrite
	}
	return c.buf.Write(p)
}

// largeStore holds n secrets of size bytes each.
func largeStore(t *testing.T, n, size int) *Store {
	t.Helper()
	var st Store
	for i := range n {
		s, err := New(fmt.Sprintf("id%05d", i), fmt.Sprintf("s%05d", i), bytes.Repeat([]byte{byte(i)}, size), map[string]string{"k": "v"}, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Create(s); err != nil {
			t.Fatal(err)
		}
	}
	return &st
}

// TestWriteBinary: WriteBinary writes the bytes of AppendBinary, in
// writes of about writeChunk and never one as large as the store, and
// passes on a write's error.
func TestWriteBinary(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *Store
	}{
		{"small", binaryFixture(t)},
		{"empty", &Store{}},
		{"2,000 secrets of 1 KiB", largeStore(t, 2000, 1024)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.st.AppendBinary([]byte("head"))
			var rec chunkRecorder
			if err := tc.st.WriteBinary(&rec, []byte("head")); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.buf.Bytes(), want) {
				t.Fatalf("WriteBinary wrote %d bytes that differ from AppendBinary's %d", rec.buf.Len(), len(want))
			}
			for _, n := range rec.writes {
				if n > writeChunk+64<<10 {
					t.Errorf("one write of %d bytes; want at most about %d", n, writeChunk)
				}
			}
			if len(want) > 2*writeChunk && len(rec.writes) < len(want)/(writeChunk+64<<10) {
				t.Errorf("%d bytes in %d writes; want chunks of about %d", len(want), len(rec.writes), writeChunk)
			}
		})
	}
	st := largeStore(t, 1000, 1024)
	for _, at := range []int{1, 2, 5} {
		rec := chunkRecorder{failAt: at}
		if err := st.WriteBinary(&rec, nil); !errors.Is(err, errWrite) {
			t.Errorf("write %d fails: WriteBinary = %v; want %v", at, err, errWrite)
		}
		if len(rec.writes) != at {
			t.Errorf("write %d fails: %d writes made; want none after the failure", at, len(rec.writes))
		}
	}
}
