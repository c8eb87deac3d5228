package transport

import (
	"crypto/x509"
	"fmt"
	"time"
)

// certTimeError explains a chain that does not verify at now because a
// certificate in it is outside its dates: which node's certificate, its
// dates, this node's clock, and how far off one of the two clocks must be
// (a certificate is dated by its issuer's clock). nil when every
// certificate in chain is within its dates at now.
func certTimeError(chain []*x509.Certificate, now time.Time) error {
	for _, c := range chain {
		var off time.Duration
		var when string
		switch {
		case now.Before(c.NotBefore):
			off, when = c.NotBefore.Sub(now), "not yet valid"
		case now.After(c.NotAfter):
			off, when = now.Sub(c.NotAfter), "expired"
		default:
			continue
		}
		return fmt.Errorf("%w: the certificate of %q is %s: valid from %s to %s, and this node's clock reads %s (%s outside): if it was issued recently, this node's clock or its issuer's is off by at least that much; check NTP on both",
			ErrCertTime, c.Subject.CommonName, when, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), off.Round(time.Second))
	}
	return nil
}
