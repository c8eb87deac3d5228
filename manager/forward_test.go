package manager

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// TestForwardedWritesAreBatched: writes arriving together at a follower
// reach the leader in a few batches, and each caller gets its own
// command's result — a name taken twice in one batch fails only for the
// second writer.
func TestForwardedWritesAreBatched(t *testing.T) {
	c := newCluster(t, 3, 0)
	l := c.leader()
	f := c.followers(l)[0]
	_, rn, err := f.node.writes.managerRaft()
	if err != nil {
		t.Fatal(err)
	}
	_, addr := rn.leaderInfo()
	inc := f.node.current()
	fw := inc.forwarderFor(addr, peerClient(inc, addr), f.cfg.ForwardTimeout)
	const unique = 50
	writeTogether(t, &fw.batcher, f.client, unique, 10, forwardInFlight+1)
	list, err := l.client.Secrets(ctxT(t))
	if err != nil || len(list) != unique+1 {
		t.Fatalf("leader lists %d secrets (%v), want %d", len(list), err, unique+1)
	}
}

// writeTogether makes unique+dups secret creations at once through c (the
// last dups all of one name), with every batch b sends held until all of
// them are queued or held, then checks that each writer got its own
// result (one write of the duplicate name succeeds, the others are 409)
// and that they went in at most maxBatches batches. The node's own writes
// (its gossip address, for one) may share the batcher: only the secret
// creations are counted.
func writeTogether(t *testing.T, b *batcher, c *api.Client, unique, dups, maxBatches int) {
	t.Helper()
	var batches, sent int // batches carrying our writes, and our writes sent
	gate := make(chan struct{})
	b.mu.Lock()
	b.gate = gate
	b.sent = func(batch []*batchReq) {
		if n := secretCreates(batch); n > 0 {
			batches++
			sent += n
		}
	}
	b.mu.Unlock()

	total := unique + dups
	errs := make([]error, total)
	var wg sync.WaitGroup
	for i := range total {
		name := fmt.Sprintf("s-%d", i)
		if i >= unique {
			name = "dup"
		}
		wg.Go(func() {
			_, errs[i] = c.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: name, Data: []byte("v")})
		})
	}
	// b.limit batches are held at the gate; everything else queues.
	eventually(t, 10*time.Second, "every write queued or held", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return sent+secretCreates(b.queue) == total
	})
	b.mu.Lock()
	b.gate = nil
	b.mu.Unlock()
	close(gate)
	wg.Wait()

	okDup := 0
	for i, err := range errs {
		switch {
		case i < unique && err != nil:
			t.Errorf("write %d: %v", i, err)
		case i >= unique && err == nil:
			okDup++
		case i >= unique && apiStatus(err) != http.StatusConflict:
			t.Errorf("duplicate write %d: %v, want 409", i, err)
		}
	}
	if okDup != 1 {
		t.Errorf("%d of the writes of one name succeeded, want 1", okDup)
	}
	b.mu.Lock()
	b.sent = nil
	b.mu.Unlock()
	if sent != total || batches > maxBatches {
		t.Fatalf("%d writes sent in %d batches; want %d in at most %d", sent, batches, total, maxBatches)
	}
}

// secretCreates counts the secret creations among a batch's commands.
func secretCreates(batch []*batchReq) (n int) {
	for _, r := range batch {
		if cmd, err := fsm.Decode(r.cmd); err == nil {
			if _, ok := cmd.(*fsm.SecretCreate); ok {
				n++
			}
		}
	}
	return n
}

// TestForwarderResults: per-command results keep their status and message;
// a leader without the batch route gets the commands one by one.
func TestForwarderResults(t *testing.T) {
	var mu sync.Mutex
	var singles []string
	batchRoute := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.URL.Path == "/internal/v1/apply-batch" && batchRoute:
			cmds, err := api.ParseApplyBatch(body)
			if err != nil {
				api.WriteError(w, err)
				return
			}
			var res []string
			for _, c := range cmds {
				if strings.HasPrefix(string(c), "bad") {
					res = append(res, `{"status":409,"error":"`+string(c)+` conflicts"}`)
				} else {
					res = append(res, `{"status":200}`)
				}
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"results":[%s]}`, strings.Join(res, ","))
		case r.URL.Path == "/internal/v1/apply":
			mu.Lock()
			singles = append(singles, string(body))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := api.NewClient(srv.Client(), srv.URL)
	fw := newForwarder(c, 10*time.Second)
	ctx := context.Background()
	if err := fw.apply(ctx, []byte("good")); err != nil {
		t.Fatalf("good command: %v", err)
	}
	err := fw.apply(ctx, []byte("bad-1"))
	if apiStatus(err) != http.StatusConflict || err.Error() != "bad-1 conflicts" {
		t.Fatalf("bad command: %v, want 409 'bad-1 conflicts'", err)
	}

	batchRoute = false
	if err := fw.apply(ctx, []byte("old-leader")); err != nil {
		t.Fatalf("command to a leader without the batch route: %v", err)
	}
	if err := fw.apply(ctx, []byte("old-leader-2")); err != nil {
		t.Fatalf("second command to a leader without the batch route: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(singles, ",") != "old-leader,old-leader-2" {
		t.Fatalf("single forwards = %q", singles)
	}
	if !fw.legacy {
		t.Fatal("forwarder did not remember that the leader has no batch route")
	}
}
