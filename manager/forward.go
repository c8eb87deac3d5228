package manager

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
)

// Forwarded writes go to the leader in batches: a follower that forwards
// many writes at once (most of a cluster's writes arrive at followers)
// would otherwise pay a request over mutual TLS, and the leader a request
// to parse, for every one. The forwarder for the leader's address is a
// batcher (batcher.go). Each command's own result comes back to its
// caller, with the status a single forward would have had, so retries
// stay as precise: only what certainly did nothing is sent again.
const (
	forwardInFlight = 4
	forwardMaxBatch = 256
	forwardMaxBytes = 4 << 20
)

// forwarder batches the commands forwarded to one leader address.
type forwarder struct {
	batcher
	timeout time.Duration // bounds each batch
	client  *api.Client   // the leader's node API
	// legacy is set when the leader has no batch route (an older build in
	// a rolling upgrade): commands then go one by one.
	legacy bool
}

// forwarderFor returns the incarnation's forwarder for the leader at addr,
// which c reaches; timeout bounds each batch it sends.
func (inc *incarnation) forwarderFor(addr string, c *api.Client, timeout time.Duration) *forwarder {
	inc.fwdMu.Lock()
	defer inc.fwdMu.Unlock()
	if inc.forwarders == nil {
		inc.forwarders = map[string]*forwarder{}
	}
	f, ok := inc.forwarders[addr]
	if !ok {
		f = newForwarder(c, timeout)
		inc.forwarders[addr] = f
	}
	return f
}

func newForwarder(c *api.Client, timeout time.Duration) *forwarder {
	f := &forwarder{timeout: timeout, client: c}
	f.batcher = batcher{limit: forwardInFlight, maxCount: forwardMaxBatch, maxBytes: forwardMaxBytes, send: f.send}
	return f
}

// apply forwards cmd and returns its result, or ctx's error if the caller
// stops waiting first (the command may still be applied).
func (f *forwarder) apply(ctx context.Context, cmd []byte) error {
	f.mu.Lock()
	legacy := f.legacy
	f.mu.Unlock()
	if legacy {
		return f.client.ApplyForwarded(ctx, cmd)
	}
	r := f.submit([][]byte{cmd})[0]
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send forwards one batch and hands each command its result. The batch
// carries several callers' commands: it ends with the forward timeout, not
// when one of them stops waiting.
func (f *forwarder) send(batch []*batchReq) {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	cmds := make([][]byte, len(batch))
	for i, r := range batch {
		cmds[i] = r.cmd
	}
	results, err := f.client.ApplyBatchForwarded(ctx, cmds)
	var ae *api.Error
	if errors.As(err, &ae) && (ae.Code == api.CodeNotFound || ae.Code == api.CodeMethodNotAllowed) {
		// The leader predates the batch route: forward one by one.
		f.mu.Lock()
		f.legacy = true
		f.mu.Unlock()
		var wg sync.WaitGroup
		for _, r := range batch {
			wg.Go(func() { r.done <- f.client.ApplyForwarded(ctx, r.cmd) })
		}
		wg.Wait()
		return
	}
	for i, r := range batch {
		if err != nil {
			r.done <- err
		} else {
			r.done <- results[i]
		}
	}
}
