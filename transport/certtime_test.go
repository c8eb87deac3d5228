package transport

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCertTimeError: a chain refused because of a clock says whose
// certificate, which way and by how much; one within its dates is not
// explained as a clock problem.
func TestCertTimeError(t *testing.T) {
	now := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	cert := func(from, to time.Time) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: "node-a"}, NotBefore: from, NotAfter: to}
	}
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		want  string // in the message; "" for no error
	}{
		{"valid", []*x509.Certificate{cert(now.Add(-time.Hour), now.Add(time.Hour))}, ""},
		{"issued by a clock 90 minutes ahead", []*x509.Certificate{cert(now.Add(89*time.Minute), now.Add(90*24*time.Hour))}, "not yet valid"},
		{"expired at this clock", []*x509.Certificate{cert(now.Add(-48*time.Hour), now.Add(-2*time.Hour))}, "expired"},
		{"the root, not the leaf", []*x509.Certificate{cert(now.Add(-time.Hour), now.Add(time.Hour)), cert(now.Add(time.Hour), now.Add(48*time.Hour))}, "1h0m0s outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := certTimeError(tc.chain, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrCertTime) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "node-a") || !strings.Contains(err.Error(), "NTP") {
				t.Fatalf("got %v; want ErrCertTime naming node-a, %q and NTP", err, tc.want)
			}
		})
	}
}
