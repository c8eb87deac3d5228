package ca

import (
	"testing"
)

func FuzzParseToken(f *testing.F) {
	f.Add("HFTKN-1-" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + "-" + "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrsq")
	f.Add("HFTKN-1--")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if got := tok.String(); got != s {
			t.Fatalf("ParseToken(%q).String() = %q", s, got)
		}
		again, err := ParseToken(tok.String())
		if err != nil || !again.Equal(tok) {
			t.Fatalf("reparse: %v", err)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	k, _ := NewKey()
	p, _ := MarshalKey(k)
	f.Add(p)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			return
		}
		if _, err := MarshalKey(k); err != nil {
			t.Fatalf("MarshalKey of a parsed key: %v", err)
		}
	})
}

func FuzzParseCertPEM(f *testing.F) {
	r, _ := NewRoot(NewID(), t0)
	f.Add(r.CertPEM())
	f.Add(append(r.CertPEM(), r.CertPEM()...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertPEM(b)
		if err != nil {
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		for _, c := range certs {
			_, _ = IdentityOf(c) // must not panic on any parsed certificate
		}
	})
}
