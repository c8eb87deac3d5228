package autolock

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// canonical is the form String gives an accepted input: trimmed, the
// prefix in upper case and the body in lower case.
func canonical(in, prefix string) string {
	in = strings.TrimSpace(in)
	return prefix + strings.ToLower(in[len(prefix):])
}

// FuzzParseKey: ParseKey never panics; an accepted input's String is its
// canonical form (one spelling per key), and errors are the package's own
// and never contain the input.
func FuzzParseKey(f *testing.F) {
	k := fixedKey(f)
	s := k.String()
	f.Add(s)
	f.Add(" " + strings.ToUpper(s) + "\n")
	f.Add(s[:len(s)-1] + "f") // unused bits set
	f.Add(s[:20] + "b" + s[21:])
	f.Add(KeyPrefix)
	f.Add("")
	f.Add("HFSHR-1-" + s[len(KeyPrefix):])
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseKey(in)
		if err != nil {
			if !errors.Is(err, ErrMalformedKey) && !errors.Is(err, ErrMistyped) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if !got.IsZero() {
				t.Fatal("a key came back with an error")
			}
			if tr := strings.TrimSpace(in); len(tr) > len(KeyPrefix)+8 && strings.Contains(err.Error(), tr) {
				t.Fatalf("error contains the input: %v", err)
			}
			return
		}
		if want := canonical(in, KeyPrefix); got.String() != want {
			t.Fatalf("String: got %q; want %q", got.String(), want)
		}
		again, err := ParseKey(got.String())
		if err != nil || !again.Equal(got) {
			t.Fatalf("canonical form does not parse back: %v", err)
		}
	})
}

// FuzzParseShare is FuzzParseKey for shares.
func FuzzParseShare(f *testing.F) {
	shares, err := split(fixedKey(f), 3, 2, &coeffReader{bytes.Repeat([]byte{0x03}, KeySize)})
	if err != nil {
		f.Fatal(err)
	}
	for _, sh := range shares {
		f.Add(sh.String())
	}
	s := shares[0].String()
	f.Add(strings.ToUpper(s) + "\r\n")
	f.Add(s[:len(s)-1] + "b")
	f.Add(validShareText(1, 1))
	f.Add(validShareText(2, 0))
	f.Add(SharePrefix)
	f.Add(fixedKey(f).String())
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseShare(in)
		if err != nil {
			if !errors.Is(err, ErrMalformedShare) && !errors.Is(err, ErrMistyped) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if !got.IsZero() {
				t.Fatal("a share came back with an error")
			}
			if tr := strings.TrimSpace(in); len(tr) > len(SharePrefix)+8 && strings.Contains(err.Error(), tr) {
				t.Fatalf("error contains the input: %v", err)
			}
			return
		}
		if want := canonical(in, SharePrefix); got.String() != want {
			t.Fatalf("String: got %q; want %q", got.String(), want)
		}
		if got.Threshold() < 2 || got.Index() < 1 {
			t.Fatalf("accepted threshold %d index %d", got.Threshold(), got.Index())
		}
		again, err := ParseShare(got.String())
		if err != nil || again != got {
			t.Fatalf("canonical form does not parse back: %v", err)
		}
	})
}

// FuzzUnwrap: Unwrap never panics, and under the fixed KEK opens only the
// golden envelopes, unchanged, to their plaintexts. Any other input fails
// with one of the package's errors.
func FuzzUnwrap(f *testing.F) {
	gs := readGolden(f)
	opens := map[string]golden{}
	for _, g := range gs {
		opens[string(g.env)] = g
		f.Add(g.env, string(g.purpose), g.node)
	}
	f.Add([]byte{}, "dek", "node-1")
	f.Add([]byte("HFWRAP"), "dek", "node-1")
	f.Add([]byte("HFWRAP\x02"), "node-key", "")
	f.Fuzz(func(t *testing.T, in []byte, purpose, node string) {
		pt, err := Unwrap(fixedKEK, Purpose(purpose), node, in)
		id, idOK := KEKID(in)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if !errors.Is(err, ErrNotWrapped) && !errors.Is(err, ErrMalformedEnvelope) && !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if errors.Is(err, ErrNotWrapped) == IsWrapped(in) {
				t.Fatalf("ErrNotWrapped = %v but IsWrapped = %v", errors.Is(err, ErrNotWrapped), IsWrapped(in))
			}
			if errors.Is(err, ErrInvalidKey) && !idOK {
				t.Fatal("ErrInvalidKey for an envelope without a KEK ID")
			}
			return
		}
		g, ok := opens[string(in)]
		if !ok {
			t.Fatalf("a %d-byte envelope not made by Wrap opened", len(in))
		}
		if g.purpose != Purpose(purpose) || g.node != node {
			t.Fatal("a golden envelope opened for another purpose or node")
		}
		if !bytes.Equal(pt, g.pt) {
			t.Fatal("a golden envelope opened to other plaintext")
		}
		if !idOK || id != fixedKEK.ID() {
			t.Fatal("an envelope that opened has no KEK ID")
		}
	})
}
