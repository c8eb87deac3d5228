package manager

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordingSend is a batcher's send that records each batch's commands,
// holds the first batch until release is closed, and answers every
// command with an error naming it, so a caller can tell its own result.
type recordingSend struct {
	mu      sync.Mutex
	batches [][]string
	started chan struct{} // closed when the first batch is in send
	release chan struct{}
}

func newRecordingSend() *recordingSend {
	return &recordingSend{started: make(chan struct{}), release: make(chan struct{})}
}

func (s *recordingSend) send(batch []*batchReq) {
	var cmds []string
	for _, r := range batch {
		cmds = append(cmds, string(r.cmd))
	}
	s.mu.Lock()
	s.batches = append(s.batches, cmds)
	first := len(s.batches) == 1
	s.mu.Unlock()
	if first {
		close(s.started)
		<-s.release
	}
	for _, r := range batch {
		r.done <- fmt.Errorf("result of %s", r.cmd)
	}
}

func (s *recordingSend) sent() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

// TestBatcherSendsALoneCommandAtOnce: a command that arrives alone is
// sent by its caller, as a batch of its own, before submit returns.
func TestBatcherSendsALoneCommandAtOnce(t *testing.T) {
	s := newRecordingSend()
	close(s.release)
	b := &batcher{limit: 2, maxCount: 10, maxBytes: 100, send: s.send}
	r := b.submit([][]byte{[]byte("a")})[0]
	if got := s.sent(); len(got) != 1 || fmt.Sprint(got[0]) != "[a]" {
		t.Fatalf("batches sent before submit returned: %v; want [[a]]", got)
	}
	if err := <-r.done; err == nil || err.Error() != "result of a" {
		t.Fatalf("result %v; want 'result of a'", err)
	}
}

// TestBatcherGathersWhileInFlight: what arrives while limit batches are
// on their way waits, and then goes in batches of at most maxCount
// commands and maxBytes bytes (a command larger than maxBytes alone); each
// caller gets its own command's result.
func TestBatcherGathersWhileInFlight(t *testing.T) {
	s := newRecordingSend()
	b := &batcher{limit: 1, maxCount: 3, maxBytes: 10, send: s.send}
	var first []*batchReq
	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		first = b.submit([][]byte{[]byte("first")})
	}()
	<-s.started

	// The first batch is on its way and limit is 1: these queue, and
	// submit returns without sending.
	cmds := []string{"b1", "b2", "b3", "b4", "cccccc", "dddd", "ee", "ffffffffffff", "g"}
	var reqs []*batchReq
	for _, c := range cmds {
		reqs = append(reqs, b.submit([][]byte{[]byte(c)})...)
	}
	if got := s.sent(); len(got) != 1 {
		t.Fatalf("%d batches sent while one was in flight at limit 1; want 1", len(got))
	}
	close(s.release)
	<-firstDone
	if err := <-first[0].done; err == nil || err.Error() != "result of first" {
		t.Fatalf("first result %v", err)
	}
	for i, r := range reqs {
		if err := <-r.done; err == nil || err.Error() != "result of "+cmds[i] {
			t.Errorf("result of %s: %v", cmds[i], err)
		}
	}
	want := "[[first] [b1 b2 b3] [b4 cccccc] [dddd ee] [ffffffffffff] [g]]"
	if got := fmt.Sprint(s.sent()); got != want {
		t.Fatalf("batches %s; want %s", got, want)
	}
}

// TestBatcherLimitsBatchesInFlight: no more than limit batches are on
// their way at once, however many callers submit together; the rest wait
// in the queue and are all sent once the batches in flight end.
func TestBatcherLimitsBatchesInFlight(t *testing.T) {
	const limit, callers = 2, 20
	var mu sync.Mutex
	sent := 0
	b := &batcher{limit: limit, maxCount: 1, maxBytes: 100}
	b.send = func(batch []*batchReq) {
		mu.Lock()
		sent += len(batch)
		mu.Unlock()
		for _, r := range batch {
			r.done <- nil
		}
	}
	gate := make(chan struct{})
	b.gate = gate // every batch formed waits here, counted in flight
	var wg sync.WaitGroup
	var reqs [callers][]*batchReq
	for i := range reqs {
		wg.Go(func() { reqs[i] = b.submit([][]byte{[]byte("x")}) })
	}
	eventually(t, 10*time.Second, "every command in flight or queued", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inFlight+len(b.queue) == callers && b.inFlight == limit
	})
	b.mu.Lock()
	b.gate = nil
	b.mu.Unlock()
	close(gate)
	wg.Wait()
	for i := range reqs {
		if err := <-reqs[i][0].done; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if sent != callers {
		t.Fatalf("%d commands sent; want %d", sent, callers)
	}
}
