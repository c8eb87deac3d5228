package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	r := mustRoot(t, NewID())
	tok, err := NewToken(r)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CADigest != r.Digest() {
		t.Errorf("CADigest = %q; want %q", tok.CADigest, r.Digest())
	}
	s := tok.String()
	if want := 6 + 2 + 64 + 1 + 52; len(s) != want {
		t.Errorf("len(token) = %d; want %d", len(s), want)
	}
	got, err := ParseToken(s)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if got != tok || got.String() != s || !got.Equal(tok) {
		t.Errorf("round trip: got %#v; want %#v", got, tok)
	}
	tok2, _ := NewToken(r)
	if tok2.Equal(tok) {
		t.Error("two NewToken calls are Equal")
	}
}

func TestParseTokenMalformed(t *testing.T) {
	r := mustRoot(t, NewID())
	tok, _ := NewToken(r)
	d, sec := tok.CADigest, tok.Secret
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"no dashes", "HFTKN1" + d + sec},
		{"lowercase prefix", "hftkn-1-" + d + "-" + sec},
		{"other prefix", "SWMTKN-1-" + d + "-" + sec},
		{"version 2", "HFTKN-2-" + d + "-" + sec},
		{"version 01", "HFTKN-01-" + d + "-" + sec},
		{"short digest", "HFTKN-1-" + d[1:] + "-" + sec},
		{"long digest", "HFTKN-1-" + d + "0-" + sec},
		{"uppercase digest", "HFTKN-1-" + strings.ToUpper(d) + "-" + sec},
		{"non-hex digest", "HFTKN-1-" + "g" + d[1:] + "-" + sec},
		{"short secret", "HFTKN-1-" + d + "-" + sec[1:]},
		{"long secret", "HFTKN-1-" + d + "-" + sec + "a"},
		{"uppercase secret", "HFTKN-1-" + d + "-" + strings.ToUpper(sec)},
		{"secret bad alphabet", "HFTKN-1-" + d + "-" + "1" + sec[1:]},
		{"secret non-canonical", "HFTKN-1-" + d + "-" + sec[:51] + "b"},
		{"trailing newline", tok.String() + "\n"},
		{"leading space", " " + tok.String()},
		{"extra part", tok.String() + "-x"},
		{"padding", "HFTKN-1-" + d + "-" + sec[:51] + "="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("ParseToken error = %v; want ErrMalformedToken", err)
			}
			if len(sec) > 0 && strings.Contains(err.Error(), sec[:10]) {
				t.Errorf("error echoes the secret: %v", err)
			}
		})
	}
}

func TestTokenEqual(t *testing.T) {
	r := mustRoot(t, NewID())
	tok, _ := NewToken(r)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'c'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := []struct {
		name string
		u    Token
		want bool
	}{
		{"same", Token{tok.CADigest, tok.Secret}, true},
		{"secret first char", Token{tok.CADigest, flip(tok.Secret, 0)}, false},
		{"secret last char", Token{tok.CADigest, flip(tok.Secret, 51)}, false},
		{"digest differs", Token{flip(tok.CADigest, 0), tok.Secret}, false},
		{"empty", Token{}, false},
		{"boundary moved", Token{tok.CADigest + "-" + tok.Secret[:1], tok.Secret[1:]}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tok.Equal(tc.u); got != tc.want {
				t.Errorf("Equal = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestTokenNotLogged(t *testing.T) {
	r := mustRoot(t, NewID())
	tok, _ := NewToken(r)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("join", "token", tok)
	out := buf.String() + fmt.Sprintf("%#v", tok)
	if strings.Contains(out, tok.Secret) {
		t.Errorf("secret appears in log or %%#v: %s", out)
	}
	if !strings.Contains(out, tok.CADigest) {
		t.Errorf("digest missing from log: %s", out)
	}
}

func TestParseKey(t *testing.T) {
	k, _ := NewKey()
	pkcs8, err := MarshalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	sec1der, _ := x509.MarshalECPrivateKey(k)
	sec1 := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1der})
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	p384PEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384der})
	withHeader := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: sec1der})
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"pkcs8", pkcs8, true},
		{"sec1", sec1, true},
		{"surrounding whitespace", append(append([]byte("\n\n"), pkcs8...), "\n\n"...), true},
		{"empty", nil, false},
		{"junk before", append([]byte("junk\n"), pkcs8...), false},
		{"junk after", append(bytes.Clone(pkcs8), "junk"...), false},
		{"two keys", append(bytes.Clone(pkcs8), pkcs8...), false},
		{"wrong type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sec1der}), false},
		{"p384", p384PEM, false},
		{"headers", withHeader, false},
		{"garbage der", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			if !tc.ok {
				if !errors.Is(err, ErrBadKey) {
					t.Fatalf("ParseKey error = %v; want ErrBadKey", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if !got.Equal(k) {
				t.Error("ParseKey returned a different key")
			}
		})
	}
}

func TestParseCertPEM(t *testing.T) {
	r1, r2 := mustRoot(t, NewID()), mustRoot(t, NewID())
	k, _ := MarshalKey(mustKey(t))
	tests := []struct {
		name string
		in   []byte
		n    int
	}{
		{"one", r1.CertPEM(), 1},
		{"two", append(r1.CertPEM(), r2.CertPEM()...), 2},
		{"whitespace between", append(append(r1.CertPEM(), "\n\n"...), r2.CertPEM()...), 2},
		{"empty", nil, 0},
		{"whitespace", []byte(" \n"), 0},
		{"junk before", append([]byte("x"), r1.CertPEM()...), 0},
		{"junk between", append(append(r1.CertPEM(), "x\n"...), r2.CertPEM()...), 0},
		{"junk after", append(r1.CertPEM(), "x"...), 0},
		{"key block", append(r1.CertPEM(), k...), 0},
		{"bad der", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}}), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCertPEM(tc.in)
			if tc.n == 0 {
				if !errors.Is(err, ErrBadCert) {
					t.Fatalf("ParseCertPEM error = %v; want ErrBadCert", err)
				}
				return
			}
			if err != nil || len(got) != tc.n {
				t.Fatalf("ParseCertPEM = %d certs, %v; want %d", len(got), err, tc.n)
			}
		})
	}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
