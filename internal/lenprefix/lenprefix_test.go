package lenprefix

import (
	"bytes"
	"errors"
	"testing"
)

// TestSplit: what Append frames splits back; bad framing is refused.
func TestSplit(t *testing.T) {
	parts := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 300)}
	b := Append(nil, parts)
	if len(b) > Size(len(parts), 301) {
		t.Errorf("Append gave %d bytes, more than Size's %d", len(b), Size(len(parts), 301))
	}
	got, err := Split(b, 0)
	if err != nil || len(got) != 3 || !bytes.Equal(got[2], parts[2]) || len(got[1]) != 0 {
		t.Fatalf("Split = %q, %v", got, err)
	}
	if _, err := Split(b, 2); !errors.Is(err, ErrTooMany) {
		t.Errorf("three items with a limit of two: %v", err)
	}
	if got, err := Split(nil, 0); err != nil || len(got) != 0 {
		t.Errorf("Split(nil) = %q, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"length past the end": {0x05, 'a'},
		"truncated length":    {0x80},
		"non-minimal length":  {0x81, 0x00, 'a'},
	} {
		if _, err := Split(bad, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzSplit: never panics; what splits appends back to the same bytes.
func FuzzSplit(f *testing.F) {
	f.Add(Append(nil, [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{1}, 300)}))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		parts, err := Split(in, 0)
		if err != nil {
			return
		}
		if !bytes.Equal(Append(nil, parts), in) {
			t.Fatal("split then append changed the bytes")
		}
	})
}
