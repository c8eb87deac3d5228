package ca

import "time"

// The renewal window: a node renews its certificate at a random point
// between these fractions of the certificate's lifetime, so that the nodes
// of a cluster, issued together, do not all renew at once.
const (
	RenewFrom = 0.5
	RenewTo   = 0.8
)

// RenewAt is when a certificate valid from notBefore to notAfter is due
// for renewal: the point random() of the way through the renewal window.
// random returns a number in [0, 1]: math/rand/v2's Float64 in a node, a
// fixed value in tests.
func RenewAt(notBefore, notAfter time.Time, random func() float64) time.Time {
	life := notAfter.Sub(notBefore)
	return notBefore.Add(time.Duration(float64(life) * (RenewFrom + (RenewTo-RenewFrom)*random())))
}

// RenewIn is how long from now until RenewAt; zero when the certificate is
// due already.
func RenewIn(notBefore, notAfter, now time.Time, random func() float64) time.Duration {
	return max(RenewAt(notBefore, notAfter, random).Sub(now), 0)
}

// Expired reports whether a certificate that expires at notAfter can no
// longer be renewed the normal way at now (every handshake refuses it).
func Expired(notAfter, now time.Time) bool { return !now.Before(notAfter) }
