package manager

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// fakeLeader is raft as the forwarding decision sees it: who leads, and
// a channel closed when that changes.
type fakeLeader struct {
	mu      sync.Mutex
	leads   bool
	addr    string
	changed chan struct{}
}

func newFakeLeader(leads bool, addr string) *fakeLeader {
	return &fakeLeader{leads: leads, addr: addr, changed: make(chan struct{})}
}

func (f *fakeLeader) isLeader() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leads
}

func (f *fakeLeader) leaderInfo() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "leader", f.addr
}

func (f *fakeLeader) leaderChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// elect makes addr the leader (this node when addr is ""), and tells.
func (f *fakeLeader) elect(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leads, f.addr = addr == "", addr
	close(f.changed)
	f.changed = make(chan struct{})
}

// calls counts the local and remote halves' calls, answering from lists.
type calls struct {
	mu            sync.Mutex
	local, remote []error // answers in turn; the last repeats
	nLocal        int
	remoteAddrs   []string
}

func answer(list []error, i int) error {
	if len(list) == 0 {
		return nil
	}
	return list[min(i, len(list)-1)]
}

func (c *calls) localFn(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nLocal++
	return answer(c.local, c.nLocal-1)
}

func (c *calls) remoteFn(_ context.Context, addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remoteAddrs = append(c.remoteAddrs, addr)
	return answer(c.remote, len(c.remoteAddrs)-1)
}

// TestToLeader is the forwarding decision: local while this node leads,
// remote against the leader otherwise, retrying only what certainly did
// nothing, and 503 "outcome unknown" for a failure after sending.
func TestToLeader(t *testing.T) {
	conflict := api.Errorf(api.CodeConflict, "name taken")
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name               string
		leads              bool
		addr               string
		local, remote      []error
		timeout            time.Duration
		wantErr            error  // errors.Is, when set
		wantStatus         int    // else the error's status (0: nil)
		wantIn             string // and a part of its message
		wantLocal, wantRem int
	}{
		{name: "leader applies locally", leads: true, wantLocal: 1},
		{name: "leader's own refusal is returned", leads: true, local: []error{conflict}, wantErr: conflict, wantLocal: 1},
		{name: "follower forwards", addr: "10.0.0.1:1", wantRem: 1},
		{name: "leader's refusal comes back as it is", addr: "10.0.0.1:1", remote: []error{conflict}, wantErr: conflict, wantRem: 1},
		{name: "a former leader's 421 is retried", addr: "10.0.0.1:1", remote: []error{errMisdirected, nil}, wantRem: 2},
		{name: "a dial failure is retried", addr: "10.0.0.1:1", remote: []error{dial, dial, nil}, wantRem: 3},
		{name: "a failure after sending is not retried", addr: "10.0.0.1:1", remote: []error{io.ErrUnexpectedEOF}, wantStatus: http.StatusServiceUnavailable, wantIn: "may or may not have been carried out", wantRem: 1},
		{name: "local not leader any more is retried", leads: true, local: []error{errMisdirected, nil}, wantLocal: 2},
		{name: "local not ready yet is retried", leads: true, local: []error{errNotReady, nil}, wantLocal: 2},
		{name: "no leader until the timeout", timeout: 50 * time.Millisecond, wantErr: errNoLeader},
		{name: "421 until the timeout is no leader", addr: "10.0.0.1:1", remote: []error{errMisdirected}, timeout: 50 * time.Millisecond, wantErr: errNoLeader, wantRem: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			f := newFakeLeader(tc.leads, tc.addr)
			c := &calls{local: tc.local, remote: tc.remote}
			err := toLeader(ctx, func() (leaderView, error) { return f, nil }, c.localFn, c.remoteFn)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v; want %v", err, tc.wantErr)
				}
			case apiStatus(err) != tc.wantStatus || (tc.wantStatus == 0 && err != nil):
				t.Fatalf("got %v (status %d); want status %d", err, apiStatus(err), tc.wantStatus)
			case !strings.Contains(errString(err), tc.wantIn):
				t.Fatalf("got %v; want it to say %q", err, tc.wantIn)
			}
			if c.nLocal != tc.wantLocal {
				t.Errorf("local called %d times; want %d", c.nLocal, tc.wantLocal)
			}
			if tc.wantRem >= 0 && len(c.remoteAddrs) != tc.wantRem {
				t.Errorf("remote called %d times; want %d", len(c.remoteAddrs), tc.wantRem)
			}
			for _, a := range c.remoteAddrs {
				if a != tc.addr {
					t.Errorf("forwarded to %q; want %q", a, tc.addr)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestToLeaderGoesOnWhenALeaderIsElected: a write waiting for a leader is
// forwarded once raft names one, woken by the change rather than by its
// backoff.
func TestToLeaderGoesOnWhenALeaderIsElected(t *testing.T) {
	f := newFakeLeader(false, "")
	c := &calls{}
	views := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() {
		done <- toLeader(context.Background(), func() (leaderView, error) {
			views <- struct{}{}
			return f, nil
		}, c.localFn, c.remoteFn)
	}()
	<-views // it looked, saw no leader, and waits
	f.elect("10.0.0.2:1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(c.remoteAddrs) != 1 || c.remoteAddrs[0] != "10.0.0.2:1" || c.nLocal != 0 {
		t.Fatalf("remote calls %v, local %d; want one forward to the new leader", c.remoteAddrs, c.nLocal)
	}
}

// TestToLeaderStopsOnAnError: when raft is not there (uninitialized, a
// worker) the call ends at once with that error.
func TestToLeaderStopsOnAnError(t *testing.T) {
	c := &calls{}
	err := toLeader(context.Background(), func() (leaderView, error) { return nil, api.ErrNotManager }, c.localFn, c.remoteFn)
	if !errors.Is(err, api.ErrNotManager) || c.nLocal != 0 || len(c.remoteAddrs) != 0 {
		t.Fatalf("got %v after %d local and %d remote calls; want ErrNotManager and no call", err, c.nLocal, len(c.remoteAddrs))
	}
}
