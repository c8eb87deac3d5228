// Package overlaykeys owns the data-plane keys: the keyrings of the two
// subsystems, gossip (memberlist's encryption) and ipsec (for a local data
// plane that programs IPsec SAs), and the rules by which they rotate. It
// knows nothing of raft or the network: the fsm package routes a Rotation
// to Keyrings.Apply, the manager's leader loop proposes rotations when
// Keyrings.Plan says so (a pure function of the rings and the clock, which
// names the rings due now and when the next falls due), and every node turns a Ring into memberlist's keyring or a data
// plane's view with the functions here.
//
// A ring holds at most MaxKeys 32-byte keys from crypto/rand, each stamped
// with a Lamport time one above the ring's newest. The primary key — the
// one traffic is encrypted with — is the second newest: a key is handed to
// every node one whole rotation before anyone encrypts with it, and the
// key that stops being primary stays installed for another rotation, so
// nodes that apply a rotation a little apart always hold each other's
// primary. A rotation names the Lamport time it follows (After); applying
// it to a ring that has moved on fails with ErrStale, so two leaders that
// both decide a rotation is due rotate once, and a rotation is due when
// the interval has passed since the ring's last one (RotatedAt, replicated),
// so a new leader never skips one either.
package overlaykeys
