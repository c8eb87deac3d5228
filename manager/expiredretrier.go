package manager

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// expiredRetrier starts, every few seconds, a manager that could not
// start because its certificate expired, until another manager renews it
// (loadStartCredentials asks them) or force-new-cluster starts it. It
// returns at once if there is none. It lives as long as Run.
type expiredRetrier struct {
	mu *sync.Mutex // the node's lifecycle lock
	// waiting returns the node info of a manager waiting to start, or nil
	// (none, shutting down, or started meanwhile). mu is held.
	waiting func() *nodeInfo
	// start starts it and, on success, forgets that it waited. mu is held.
	start func(ctx context.Context, info *nodeInfo) error
	every time.Duration
	log   *slog.Logger
}

func (r *expiredRetrier) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.mu.Lock()
		waiting := r.waiting() != nil
		r.mu.Unlock()
		if !waiting {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		r.mu.Lock()
		var err error
		if info := r.waiting(); info != nil {
			if err = r.start(ctx, info); err == nil {
				r.log.Info("expired certificate renewed through another manager; node started")
			}
		}
		r.mu.Unlock()
		if err != nil && !errors.Is(err, errCertExpired) {
			r.log.Warn("cannot start", "err", err)
		}
	}
}

// newExpiredRetrier builds the node's retrier for a manager whose
// certificate expired while it was down.
func newExpiredRetrier(n *Node) *expiredRetrier {
	return &expiredRetrier{
		mu: &n.mu,
		waiting: func() *nodeInfo {
			if n.stopping || n.current() != nil {
				return nil
			}
			return n.expired
		},
		start: func(ctx context.Context, info *nodeInfo) error {
			err := n.start(ctx, info, raftResume)
			if err == nil {
				n.expired = nil
			}
			return err
		},
		every: 5 * time.Second,
		log:   n.logger,
	}
}
