package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/overlaykeys"
)

// keyRotator rotates the data-plane keyrings when they are due
// (overlaykeys.Keyrings.Plan decides), and replaces them all when a node
// is removed (Purge). It runs on every manager and acts only while leading
// with its leader.ready applied, so that its state is current.
type keyRotator struct {
	state stateView
	// leading reports whether this manager leads and has applied its
	// leader.ready entry.
	leading func() bool
	// propose applies an encoded command through raft on this leader.
	propose func(ctx context.Context, cmd []byte) error
	now     func() time.Time
	// clockOK is nil when this manager's clock may date a rotation: not
	// off the other managers' beyond the allowed skew, and not stepped
	// since it was last measured (clockSkew.checkIssue). A leader whose
	// clock is off would rotate early and set the next rotation from its
	// wrong clock, holding every later rotation off by as much (the soak
	// saw a leader 3 minutes ahead do so). Nil: no check.
	clockOK func() error
	kick    <-chan struct{} // wakes the loop to look at the schedule now
	log     *slog.Logger
}

// Run looks at the schedule every second at most, or when kicked.
func (k *keyRotator) Run(ctx context.Context) error {
	for {
		wait := time.Second
		if k.mayRotate() {
			wait = min(wait, k.rotateDue(ctx))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case <-k.kick:
			t.Stop()
		}
	}
}

// mayRotate says whether this manager rotates now: it leads, and its
// clock may date a rotation.
func (k *keyRotator) mayRotate() bool {
	return k.leading() && (k.clockOK == nil || k.clockOK() == nil)
}

// rotateDue rotates every ring that is due and returns how long until the
// next one is.
func (k *keyRotator) rotateDue(ctx context.Context) time.Duration {
	now := k.now()
	next := now.Add(time.Hour)
	var rots []overlaykeys.Rotation
	var genErr error
	k.state.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster == nil {
			return
		}
		plan := s.Keys.Plan(s.Cluster.Settings.KeyRotation, now)
		if !plan.Next.IsZero() {
			next = minTime(next, plan.Next)
		}
		for _, sub := range plan.Due {
			rot, err := overlaykeys.NewRotation(sub, s.Keys.Ring(sub), now, nil)
			if err != nil {
				genErr = err
				continue
			}
			rots = append(rots, rot)
		}
	})
	if genErr != nil {
		k.log.Error("cannot make a data-plane key", "err", genErr)
	}
	for _, rot := range rots {
		b, err := fsm.Encode(&fsm.KeysRotate{Rotation: rot})
		if err == nil {
			err = k.propose(ctx, b)
		}
		switch {
		case errors.Is(err, overlaykeys.ErrStale):
			// Another leader rotated first: nothing to do.
		case err != nil:
			k.log.Warn("data-plane key rotation failed; retrying", "subsystem", rot.Subsystem, "err", err)
			return time.Second
		default:
			newest := rot.Keys[len(rot.Keys)-1]
			k.log.Info("data-plane keys rotated", "subsystem", rot.Subsystem, "key_id", newest.ID, "lamport", newest.Lamport)
			metricKeyRotated(string(rot.Subsystem))
		}
	}
	if len(rots) > 0 {
		return 0 // look again at once: the next due time moved
	}
	return max(next.Sub(now), 0)
}

// Purge replaces every key of both data-plane keyrings at once, as the
// leader does when it removes node id: the keys the node held then open
// nothing sent afterwards. A rotation that races with the purge (another
// leader's, the schedule's) is followed by a fresh purge.
func (k *keyRotator) Purge(ctx context.Context, id string) error {
	for _, sub := range overlaykeys.Subsystems {
		var err error
		for range 3 {
			var rot overlaykeys.Rotation
			var genErr error
			k.state.Read(func(s *fsm.State, _ uint64) {
				rot, genErr = overlaykeys.NewPurge(sub, s.Keys.Ring(sub), k.now(), nil)
			})
			if genErr != nil {
				return genErr
			}
			var b []byte
			if b, err = fsm.Encode(&fsm.KeysRotate{Rotation: rot}); err == nil {
				err = k.propose(ctx, b)
			}
			if !errors.Is(err, overlaykeys.ErrStale) {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("%s keyring: %w", sub, err)
		}
		metricKeyRotated(string(sub))
	}
	k.log.Info("data-plane keyrings replaced: a node was removed", "removed", id)
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
