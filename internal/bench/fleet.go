package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// fleet is the simulated workers of a run, each following the cluster
// in goroutines of its own until stop.
type fleet struct {
	workers []*simWorker
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// retries counts the joins tried again.
	retries atomic.Int64
}

// joinConcurrency bounds the joins in flight: the join storm of a run.
const joinConcurrency = 64

// joinTries bounds the tries of one worker's join.
const joinTries = 20

// joinFleet joins n simulated workers with the cluster's worker token,
// joinConcurrency at a time, each through one of the managers in turn, and
// starts each one following the cluster as soon as it has joined. It
// returns when all have joined (or the first join failed), with how long
// that took.
func (b *bench) joinFleet(ctx context.Context, n int) (*fleet, time.Duration, error) {
	tok, err := b.nodes[0].client.JoinToken(ctx, ca.RoleWorker)
	if err != nil {
		return nil, 0, fmt.Errorf("worker join token: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &fleet{workers: make([]*simWorker, n), cancel: cancel}
	var (
		next     atomic.Int64
		joined   atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	jctx, stopJoins := context.WithCancel(ctx)
	defer stopJoins()
	start := time.Now()
	for range min(n, joinConcurrency) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || jctx.Err() != nil {
					return
				}
				via := b.nodes[i%len(b.nodes)]
				w, err := joinWorker(jctx, i, tok.Token, via.addr, fmt.Sprintf("127.0.0.1:%d", 20000+i%40000))
				// A join the cluster could not take yet (no leader, the
				// leadership lost under it) is tried again, as an
				// operator or a provisioning script would; each try is a
				// new key and a new node.
				for try := 1; err != nil && try < joinTries && retryableWrite(err) && jctx.Err() == nil; try++ {
					f.retries.Add(1)
					select {
					case <-jctx.Done():
					case <-time.After(min(time.Duration(try)*100*time.Millisecond, time.Second)):
					}
					w, err = joinWorker(jctx, i, tok.Token, via.addr, fmt.Sprintf("127.0.0.1:%d", 20000+i%40000))
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("worker %d: %w", i, err) })
					stopJoins()
					return
				}
				f.workers[i] = w
				joined.Add(1)
				f.wg.Go(func() { w.run(runCtx) })
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			took := time.Since(start)
			if firstErr == nil && ctx.Err() != nil {
				firstErr = ctx.Err()
			}
			if firstErr != nil {
				f.stop()
				return nil, 0, firstErr
			}
			return f, took, nil
		case <-tick.C:
			b.step(false, "joining %s simulated workers… %s joined", thousands(int64(n)), thousands(joined.Load()))
		}
	}
}

// removeOrphans removes the worker records no simulated worker holds: a
// join whose answer was lost (the leader lost under it) and that was tried
// again leaves one, which never polls and so would hold up a CA rotation
// for ever, as an operator removes a worker that is gone (`holdfast node
// rm`). It returns how many it removed.
func (b *bench) removeOrphans(ctx context.Context, f *fleet) (int, error) {
	ours := map[string]bool{}
	for _, w := range f.workers {
		ours[w.snapshot().nodeID] = true
	}
	nodes, err := b.nodes[0].client.Nodes(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, n := range nodes {
		if n.Role != ca.RoleWorker || ours[n.ID] {
			continue
		}
		err := retrying(ctx, func() error { return b.nodes[0].client.RemoveNode(ctx, n.ID, false) })
		if api.CodeOf(err) == api.CodeNotFound {
			err = nil // a try whose answer was lost removed it
		}
		if err != nil {
			return removed, fmt.Errorf("remove the orphan worker record %s: %w", n.ID, err)
		}
		removed++
	}
	return removed, nil
}

// stop ends every worker's loops and waits for them; f may hold workers
// that never joined (nil).
func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// waitAll waits until check holds for every worker's state (check runs
// under the worker's lock and must not keep what it is given), ctx ends or
// timeout passes; what names the condition in the error, which also tells
// how many workers fall short and the last error of one of them.
func (b *bench) waitAll(ctx context.Context, f *fleet, timeout time.Duration, what string, check func(st *workerState) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(benchPollInterval)
	defer tick.Stop()
	for {
		short := 0
		var lastErr error
		for _, w := range f.workers {
			// check runs under the worker's lock: it may read its maps.
			w.mu.Lock()
			if !check(&w.workerState) {
				short++
				if w.lastErr != nil {
					lastErr = w.lastErr
				}
			}
			w.mu.Unlock()
		}
		if short == 0 {
			return nil
		}
		if err := b.alive(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		b.step(false, "waiting for %s… %s of %s workers to go", what, thousands(int64(short)), thousands(int64(len(f.workers))))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("timed out after %s waiting for %s: %d of %d workers short (one's last error: %v); see the logs in %s",
				timeout, what, short, len(f.workers), lastErr, b.root)
		case <-tick.C:
		}
	}
}

// newestIPsec returns the newest ipsec key a manager holds.
func newestIPsec(ctx context.Context, cl *api.Client) (api.Key, error) {
	kr, err := cl.Keyring(ctx, "ipsec")
	if err != nil {
		return api.Key{}, err
	}
	var k api.Key
	for _, x := range kr.Keys {
		if x.Lamport > k.Lamport {
			k = x
		}
	}
	if k.Lamport == 0 {
		return api.Key{}, errors.New("the ipsec keyring is empty")
	}
	return k, nil
}

// keyAgedForRotation waits until the newest ipsec key is older than the
// shortest rotation interval, so that setting that interval rotates at
// once, and returns that key.
func (b *bench) keyAgedForRotation(ctx context.Context, cl *api.Client) (api.Key, error) {
	k, err := newestIPsec(ctx, cl)
	if err != nil {
		return api.Key{}, err
	}
	if wait := time.Until(k.CreatedAt.Add(benchKeyRotation + 100*time.Millisecond)); wait > 0 {
		b.step(true, "waiting %.1f s for the ipsec key to be due for rotation", wait.Seconds())
		select {
		case <-ctx.Done():
			return api.Key{}, ctx.Err()
		case <-time.After(wait):
		}
	}
	return k, nil
}

// setKeyRotation sets the cluster's key rotation interval through cl,
// retrying while the cluster cannot take a write yet.
func setKeyRotation(ctx context.Context, cl *api.Client, d time.Duration) error {
	s := d.String()
	for {
		_, err := cl.Update(ctx, api.UpdateRequest{KeyRotation: &s})
		if err == nil || !retryableWrite(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-time.After(benchRetryInterval):
		}
	}
}

// rotateKeysNow makes the cluster rotate its data-plane keys now: with
// the newest key due (keyAgedForRotation), the shortest interval makes
// the leader rotate at once; the caller sets the interval back
// (restoreKeyRotation) once it has seen the new key.
func rotateKeysNow(ctx context.Context, cl *api.Client) error {
	if err := setKeyRotation(ctx, cl, benchKeyRotation); err != nil {
		return fmt.Errorf("set --key-rotation %s: %w", benchKeyRotation, err)
	}
	return nil
}

// defaultKeyRotation is the interval bench leaves the cluster with.
const defaultKeyRotation = 12 * time.Hour

func restoreKeyRotation(ctx context.Context, cl *api.Client) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), benchStepTimeout)
	defer cancel()
	return setKeyRotation(ctx, cl, defaultKeyRotation)
}
