package manager

import "sync"

// batcher gathers commands that arrive while earlier ones are on their way
// and sends them together. While fewer than limit batches are on their
// way, a caller sends everything queued (up to maxCount commands and
// maxBytes) as one batch; whoever finishes a batch starts the next if more
// are queued, in a new goroutine, so that a caller is not kept sending
// others' batches after its own. A lone command is sent at once, so
// batching adds no wait to a write that arrives alone.
//
// The forwarder (a follower sending writes to the leader) and the proposer
// (the leader proposing them to raft) are batchers.
type batcher struct {
	limit, maxCount, maxBytes int
	// send carries out one batch and answers each of its commands on its
	// done channel.
	send func(batch []*batchReq)

	mu       sync.Mutex
	queue    []*batchReq
	inFlight int
	// Test hooks: sent, when set, sees each batch as it is formed (under
	// mu); gate, when set, holds every batch until it is closed.
	sent func(batch []*batchReq)
	gate chan struct{}
}

type batchReq struct {
	cmd  []byte
	done chan error // buffered: send never blocks on a caller gone
}

// submit queues cmds, sends a batch if it may, and returns the channels
// on which each command's result arrives.
func (b *batcher) submit(cmds [][]byte) []*batchReq {
	reqs := make([]*batchReq, len(cmds))
	for i, c := range cmds {
		reqs[i] = &batchReq{cmd: c, done: make(chan error, 1)}
	}
	b.mu.Lock()
	b.queue = append(b.queue, reqs...)
	b.mu.Unlock()
	b.pump()
	return reqs
}

// pump sends the queued commands as one batch if fewer than limit batches
// are on their way.
func (b *batcher) pump() {
	b.mu.Lock()
	if len(b.queue) == 0 || b.inFlight >= b.limit {
		b.mu.Unlock()
		return
	}
	n, size := 0, 0
	for n < len(b.queue) && n < b.maxCount && (n == 0 || size+len(b.queue[n].cmd) <= b.maxBytes) {
		size += len(b.queue[n].cmd)
		n++
	}
	batch := b.queue[:n:n]
	b.queue = append([]*batchReq(nil), b.queue[n:]...)
	b.inFlight++
	if b.sent != nil {
		b.sent(batch)
	}
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		<-gate
	}

	b.send(batch)

	b.mu.Lock()
	b.inFlight--
	more := len(b.queue) > 0
	b.mu.Unlock()
	if more {
		go b.pump()
	}
}
