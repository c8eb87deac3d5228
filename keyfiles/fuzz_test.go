package keyfiles

import (
	"bytes"
	"testing"
)

// FuzzParseJournal: never panics; what parses marshals back to the input.
func FuzzParseJournal(f *testing.F) {
	f.Add(marshalJournal([]entry{{DEKFile, []byte("a")}, {NodeKeyFile, []byte("bc")}}))
	f.Add(marshalJournal([]entry{{RootFile, nil}}))
	f.Add([]byte("HFJRNL\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseJournal(b)
		if err != nil {
			return
		}
		if got := marshalJournal(es); !bytes.Equal(got, b) {
			t.Fatalf("marshal(parse(b)) = %x; want %x", got, b)
		}
	})
}

// FuzzParsePlainDEK: never panics; a framed body comes back whole.
func FuzzParsePlainDEK(f *testing.F) {
	f.Add(framePlainDEK([]byte("HFKEYS\x01")))
	f.Add([]byte("HFPLAIN\x01"))
	f.Add([]byte("HFKEYS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := parsePlainDEK(b)
		if err != nil || bytes.HasPrefix(b, []byte(legacyMagic)) {
			return
		}
		if got := framePlainDEK(body); !bytes.Equal(got, b) {
			t.Fatalf("frame(parse(b)) = %x; want %x", got, b)
		}
	})
}
