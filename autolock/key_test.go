package autolock

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// fixedKey is a key with known bytes 0x00, 0x01, ..., 0x1f.
func fixedKey(t testing.TB) Key {
	t.Helper()
	var k Key
	for i := range k.b {
		k.b[i] = byte(i)
	}
	k.valid = true
	return k
}

func TestKeyRoundTrip(t *testing.T) {
	for i := range 100 {
		k := NewKey()
		s := k.String()
		if !strings.HasPrefix(s, KeyPrefix) || len(s) != len(KeyPrefix)+58 {
			t.Fatalf("key %d: got %d-character text; want %s and 58 characters", i, len(s), KeyPrefix)
		}
		for _, in := range []string{s, " " + s + "\n", "\t" + s + "\r\n", strings.ToUpper(s), strings.ToLower(s)} {
			got, err := ParseKey(in)
			if err != nil {
				t.Fatalf("key %d: ParseKey(variant): %v", i, err)
			}
			if !got.Equal(k) {
				t.Fatalf("key %d: ParseKey(String()) is another key", i)
			}
			if got.String() != s {
				t.Fatalf("key %d: String of parsed key is not canonical", i)
			}
		}
	}
}

// TestKeyGolden pins the text form and the KEK of a known key, against an
// independent HKDF (RFC 5869 written out with HMAC).
func TestKeyGolden(t *testing.T) {
	k := fixedKey(t)
	sum := sha256.Sum256(append([]byte("holdfast/unlock key checksum v1"), k.b[:]...))
	want := KeyPrefix + strings.ToLower(strings.TrimRight(
		b32std(append(append([]byte{}, k.b[:]...), sum[:4]...)), "="))
	if got := k.String(); got != want {
		t.Fatalf("String: got %s; want %s", got, want)
	}
	if got := k.String(); got != "HFKEY-1-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypydmgpje" {
		t.Fatalf("String: got %s; want the pinned text", got)
	}

	// HKDF-SHA256 with no salt: PRK = HMAC(zeros(32), ikm);
	// OKM = HMAC(PRK, info || 0x01) (one block).
	m := hmac.New(sha256.New, make([]byte, 32))
	m.Write(k.b[:])
	prk := m.Sum(nil)
	m = hmac.New(sha256.New, prk)
	m.Write([]byte("holdfast/autolock kek v1"))
	m.Write([]byte{1})
	okm := m.Sum(nil)
	if got := k.KEK().Bytes(); !bytes.Equal(got, okm) {
		t.Fatalf("KEK: got %x; want %x", got, okm)
	}
}

func TestKEK(t *testing.T) {
	k1, k2 := NewKey(), NewKey()
	a, b := k1.KEK(), k1.KEK()
	if !a.Equal(b) || a.ID() != b.ID() {
		t.Fatal("KEK of one key differs between calls")
	}
	if k1.KEK().Equal(k2.KEK()) {
		t.Fatal("two keys have one KEK")
	}
	if bytes.Equal(k1.KEK().Bytes(), k1.b[:]) {
		t.Fatal("KEK is the key itself")
	}
}

func TestKeyEqualIsZero(t *testing.T) {
	k := NewKey()
	var z Key
	tests := []struct {
		name string
		a, b Key
		want bool
	}{
		{"same", k, k, true},
		{"parsed", k, mustParseKey(t, k.String()), true},
		{"other", k, NewKey(), false},
		{"zero and key", z, k, false},
		{"zero and zero", z, z, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.want {
				t.Fatalf("Equal: got %v; want %v", got, tt.want)
			}
		})
	}
	if !z.IsZero() || k.IsZero() {
		t.Fatalf("IsZero: got %v, %v; want true, false", z.IsZero(), k.IsZero())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("KEK of the zero Key did not panic")
		}
	}()
	z.KEK()
}

func mustParseKey(t *testing.T, s string) Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestParseKeyTypo changes every character of a key's body to every other
// character of the alphabet: each must be ErrMistyped, never accepted.
func TestParseKeyTypo(t *testing.T) {
	s := NewKey().String()
	n := 0
	for i := len(KeyPrefix); i < len(s); i++ {
		for _, c := range []byte(alphabet) {
			if c == s[i] {
				continue
			}
			typo := s[:i] + string(c) + s[i+1:]
			_, err := ParseKey(typo)
			if !errors.Is(err, ErrMistyped) {
				t.Fatalf("character %d changed: got %v; want ErrMistyped", i, err)
			}
			if strings.Contains(err.Error(), typo[len(KeyPrefix):]) || strings.Contains(err.Error(), typo) {
				t.Fatalf("error contains the input: %v", err)
			}
			n++
		}
	}
	if n != 58*31 {
		t.Fatalf("tried %d typos; want %d", n, 58*31)
	}
}

func TestParseKeyMalformed(t *testing.T) {
	s := NewKey().String()
	body := s[len(KeyPrefix):]
	sh, err := Split(NewKey(), 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrMalformedKey},
		{"spaces", " \n", ErrMalformedKey},
		{"no prefix", body, ErrMalformedKey},
		{"other version", "HFKEY-2-" + body, ErrMalformedKey},
		{"other product", "SWMKEY-1-" + body, ErrMalformedKey},
		{"prefix only", KeyPrefix, ErrMalformedKey},
		{"short", s[:len(s)-1], ErrMalformedKey},
		{"long", s + "a", ErrMalformedKey},
		{"padded", s + "======", ErrMalformedKey},
		{"digit 0", s[:20] + "0" + s[21:], ErrMalformedKey},
		{"digit 1", s[:20] + "1" + s[21:], ErrMalformedKey},
		{"digit 8", s[:20] + "8" + s[21:], ErrMalformedKey},
		{"dash", s[:20] + "-" + s[21:], ErrMalformedKey},
		{"inner space", s[:20] + " " + s[21:], ErrMalformedKey},
		{"non-ASCII", s[:20] + "é" + s[22:], ErrMalformedKey},
		{"kelvin sign in prefix", "HF\u212aEY-1-" + body, ErrMalformedKey},
		{"a share", sh[0].String(), ErrMalformedKey},
		{"hex", hex.EncodeToString(make([]byte, 32)), ErrMalformedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			if !k.IsZero() {
				t.Fatal("a key came back with the error")
			}
			// (Inputs no longer than the prefix may match the prefix the
			// message names.)
			if in := strings.TrimSpace(tt.in); len(in) > len(KeyPrefix) && strings.Contains(err.Error(), in) {
				t.Fatalf("error contains the input: %v", err)
			}
			if len(body) > 0 && strings.Contains(err.Error(), body[:16]) {
				t.Fatalf("error contains key material: %v", err)
			}
		})
	}
}

// TestKeyRedacted: no way of printing a Key but String shows it.
func TestKeyRedacted(t *testing.T) {
	k := NewKey()
	secret := k.String()[len(KeyPrefix):]
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("unlock", "key", k, "ptr", &k)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("unlock", "key", k)
	outs := map[string]string{
		"%v":       fmt.Sprintf("%v", k),
		"%s":       fmt.Sprintf("%s", k),
		"%+v":      fmt.Sprintf("%+v", k),
		"%#v":      fmt.Sprintf("%#v", k),
		"%x":       fmt.Sprintf("%x", k),
		"%q":       fmt.Sprintf("%q", k),
		"%v ptr":   fmt.Sprintf("%v", &k),
		"%v slice": fmt.Sprintf("%v", []Key{k}),
		"%+v in struct": fmt.Sprintf("%+v", struct {
			K Key
		}{k}),
		"Println":  fmt.Sprintln(k),
		"GoString": k.GoString(),
		"LogValue": k.LogValue().String(),
		"slog":     logged.String(),
		"error":    fmt.Errorf("bad key %v", k).Error(),
	}
	for name, out := range outs {
		if strings.Contains(out, secret) || strings.Contains(strings.ToUpper(out), strings.ToUpper(secret)) {
			t.Errorf("%s shows the key: %s", name, out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("%s: got %q; want a redacted placeholder", name, out)
		}
	}
	if k.String() == "" || !strings.Contains(k.String(), secret) {
		t.Fatal("String does not show the key")
	}
}
