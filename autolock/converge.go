package autolock

import (
	"fmt"

	"github.com/holdfast/holdfast/internal/seal"
)

// Convergence is what a manager must do to follow the cluster's unlock
// key, as Converge decides it.
type Convergence struct {
	// KEK is the key-encryption key the cluster's unlock key asks for;
	// zero when autolock is off (files stored unwrapped).
	KEK seal.Key
	// Rekey: the node's files are not wrapped under KEK. Re-wrap them
	// under it in one step, then rotate the DEK so that a DEK stored under
	// the old KEK, or unwrapped, opens nothing afterwards.
	Rekey bool
}

// Converge decides whether a manager whose files are wrapped under some
// KEK must re-wrap them to follow the cluster's unlock key. unlockKey is
// the key as the replicated state holds it ("" when autolock is off);
// wrappedUnder reports, in constant time, whether the files are wrapped
// under a given KEK (keyfiles.Store.WrappedUnder; the zero key means
// unwrapped). It reads no clock and no file itself. A key that does not
// parse is an error: the caller converges on nothing and retries.
//
// The caller must converge only on the cluster's current key: a manager
// replaying its log after a restart sees every historical key go by. So
// when the state it has applied needs a rekey, it reads the key again
// linearizably through the leader and decides on that one.
func Converge(unlockKey string, wrappedUnder func(seal.Key) bool) (Convergence, error) {
	var c Convergence
	if unlockKey != "" {
		k, err := ParseKey(unlockKey)
		if err != nil {
			return Convergence{Rekey: true}, fmt.Errorf("the cluster's unlock key: %w", err)
		}
		c.KEK = k.KEK()
	}
	c.Rekey = !wrappedUnder(c.KEK)
	return c, nil
}
