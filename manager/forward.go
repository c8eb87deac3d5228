package manager

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
)

// Forwarded writes go to the leader in batches: a follower that forwards
// many writes at once (most of a cluster's writes arrive at followers)
// would otherwise pay a request over mutual TLS, and the leader a request
// to parse, for every one. Callers queue their command on the forwarder
// for the leader's address; while fewer than forwardInFlight batches are
// on their way, a caller sends everything queued as one batch, and
// whoever finishes a batch starts the next if more are queued. Each
// command's own result comes back to its caller, with the status a single
// forward would have had, so retries stay as precise: only what certainly
// did nothing is sent again.
const (
	forwardInFlight = 4
	forwardMaxBatch = 256
	forwardMaxBytes = 4 << 20
)

// forwarder batches the commands forwarded to one leader address.
type forwarder struct {
	timeout  time.Duration // bounds each batch
	mu       sync.Mutex
	queue    []*forwardReq
	inFlight int
	// legacy is set when the leader has no batch route (an older build in
	// a rolling upgrade): commands then go one by one.
	legacy bool
	// Test hooks: sent, when set, sees each batch as it is formed (under
	// mu); gate, when set, holds every batch until it is closed.
	sent func(batch []*forwardReq)
	gate chan struct{}
}

type forwardReq struct {
	cmd  []byte
	done chan error // buffered: the sender never blocks on a caller gone
}

// forwarderFor returns the incarnation's forwarder for the leader at addr;
// timeout bounds each batch it sends.
func (inc *incarnation) forwarderFor(addr string, timeout time.Duration) *forwarder {
	inc.fwdMu.Lock()
	defer inc.fwdMu.Unlock()
	if inc.forwarders == nil {
		inc.forwarders = map[string]*forwarder{}
	}
	f, ok := inc.forwarders[addr]
	if !ok {
		f = &forwarder{timeout: timeout}
		inc.forwarders[addr] = f
	}
	return f
}

// apply forwards cmd through c and returns its result, or ctx's error if
// the caller stops waiting first (the command may still be applied).
func (f *forwarder) apply(ctx context.Context, c *api.Client, cmd []byte) error {
	f.mu.Lock()
	legacy := f.legacy
	f.mu.Unlock()
	if legacy {
		return c.ApplyForwarded(ctx, cmd)
	}
	r := &forwardReq{cmd: cmd, done: make(chan error, 1)}
	f.mu.Lock()
	f.queue = append(f.queue, r)
	f.mu.Unlock()
	f.pump(ctx, c)
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pump sends the queued commands as one batch if fewer than
// forwardInFlight batches are on their way; when the batch is done and
// more are queued, it goes on in a new goroutine, so that a caller is not
// kept sending others' batches after its own.
func (f *forwarder) pump(ctx context.Context, c *api.Client) {
	{
		f.mu.Lock()
		if len(f.queue) == 0 || f.inFlight >= forwardInFlight {
			f.mu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(f.queue) && n < forwardMaxBatch && (n == 0 || size+len(f.queue[n].cmd) <= forwardMaxBytes) {
			size += len(f.queue[n].cmd)
			n++
		}
		batch := f.queue[:n:n]
		f.queue = append([]*forwardReq(nil), f.queue[n:]...)
		f.inFlight++
		if f.sent != nil {
			f.sent(batch)
		}
		gate := f.gate
		f.mu.Unlock()
		if gate != nil {
			<-gate
		}

		// The batch carries other callers' commands: it must not end when
		// this caller stops waiting, only when the forward timeout does.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
		f.send(bctx, c, batch)
		cancel()

		f.mu.Lock()
		f.inFlight--
		more := len(f.queue) > 0
		f.mu.Unlock()
		if more {
			go f.pump(ctx, c)
		}
	}
}

// send forwards one batch and hands each command its result.
func (f *forwarder) send(ctx context.Context, c *api.Client, batch []*forwardReq) {
	cmds := make([][]byte, len(batch))
	for i, r := range batch {
		cmds[i] = r.cmd
	}
	results, err := c.ApplyBatchForwarded(ctx, cmds)
	var ae *api.Error
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed) {
		// The leader predates the batch route: forward one by one.
		f.mu.Lock()
		f.legacy = true
		f.mu.Unlock()
		var wg sync.WaitGroup
		for _, r := range batch {
			wg.Go(func() { r.done <- c.ApplyForwarded(ctx, r.cmd) })
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
