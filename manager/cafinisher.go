package manager

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
)

// caFinisher, on the leader, ends the rotation in progress once every
// node holds a certificate from the new root (ca.NextLeaderStep): the new
// root replaces the old one and both join tokens change (they pin the
// root). Idempotent across leader changes: the finish names the rotation,
// and the FSM refuses a second one.
type caFinisher struct {
	state   stateView
	leading func() bool
	// apply commits a command through this leader's raft.
	apply func(ctx context.Context, cmd fsm.Command) error
	log   *slog.Logger
	now   func() time.Time // the node's clock
}

func (f *caFinisher) Run(ctx context.Context) error {
	for {
		ch := f.state.Changed()
		var rot *fsm.CARotation
		if f.leading() {
			f.state.Read(func(s *fsm.State, _ uint64) {
				if ca.NextLeaderStep(s.CARotation.InProgress(), len(s.RotationWaiting())) == ca.StepFinish {
					c := *s.CARotation
					rot = &c
				}
			})
		}
		var retry <-chan time.Time
		if rot != nil {
			if err := f.finish(ctx, rot); err != nil && ctx.Err() == nil {
				f.log.Warn("cannot finish the CA rotation yet; retrying", "rotation", rot.ID, "err", err)
				retry = time.After(time.Second)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-retry:
		}
	}
}

func (f *caFinisher) finish(ctx context.Context, rot *fsm.CARotation) error {
	next, err := cachedRoot(rot.NewCertPEM, rot.NewKeyPEM)
	if err != nil {
		return err
	}
	wt, err := ca.NewToken(next)
	if err != nil {
		return err
	}
	mt, err := ca.NewToken(next)
	if err != nil {
		return err
	}
	err = f.apply(ctx, &fsm.CARotateFinish{ID: rot.ID, WorkerToken: wt.String(), ManagerToken: mt.String(), FinishedAt: f.now().UTC()})
	if errors.Is(err, fsm.ErrNoRotation) {
		return nil
	}
	if err == nil {
		f.log.Info("CA rotation finished: the old root is no longer trusted and the join tokens changed", "rotation", rot.ID, "root", rot.NewDigest)
		metricCARotated()
	}
	return err
}

// newCAFinisher builds manager rn's rotation finisher.
func newCAFinisher(n *Node, rn *raftNode) *caFinisher {
	return &caFinisher{
		state:   rn.fsm,
		leading: rn.isLeader,
		apply: func(ctx context.Context, cmd fsm.Command) error {
			actx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
			defer cancel()
			return n.writes.applyCmd(actx, rn, cmd)
		},
		log: n.logger,
		now: n.cfg.now,
	}
}
