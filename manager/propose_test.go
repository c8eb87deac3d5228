package manager

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/secrets"
)

// TestLeaderProposesWritesInBatches: writes that reach the leader together
// become a few log entries, each caller gets its own command's result (a
// name taken twice in one entry fails only for the second writer), and
// the followers apply the same.
func TestLeaderProposesWritesInBatches(t *testing.T) {
	c := newCluster(t, 3, 0)
	l := c.leader()
	_, rn, err := l.node.writes.managerRaft()
	if err != nil {
		t.Fatal(err)
	}
	before := rn.r.LastIndex()
	const unique, dups = 50, 10
	writeTogether(t, &rn.prop.batcher, l.client, unique, dups, proposeInFlight+1)
	// The log grew by the batches (and whatever the node wrote of its
	// own), not by a write each.
	if grew := rn.r.LastIndex() - before; grew >= unique+dups {
		t.Errorf("the log grew by %d entries for %d writes", grew, unique+dups)
	}
	for _, f := range c.followers(l) {
		eventually(t, 10*time.Second, "the follower applies every batch", func() bool {
			list, err := f.client.Secrets(ctxT(t))
			return err == nil && len(list) == unique+1
		})
	}
}

// TestProposerBatchesFitInOneCommand: the fullest batch the proposer
// makes is a command the FSM accepts.
func TestProposerBatchesFitInOneCommand(t *testing.T) {
	if n := fsm.BatchSize(proposeMaxBatch, proposeMaxBytes); n > fsm.MaxCommandSize {
		t.Fatalf("a full batch is up to %d bytes; commands are at most %d", n, fsm.MaxCommandSize)
	}
}

// TestProposerRefusesBatchesFromPeers: a batch command sent to the leader
// (only the leader makes them) is refused on its own, and the commands
// sent with it are applied.
func TestProposerRefusesBatchesFromPeers(t *testing.T) {
	c := newCluster(t, 1, 0)
	l := c.leader()
	enc := func(name string) []byte {
		b, err := fsm.Encode(&fsm.SecretCreate{CreateCmd: secrets.CreateCmd{ID: "id-" + name, Name: name, Data: []byte("v"), CreatedAt: time.Now().UTC()}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	batch, err := fsm.EncodeBatch([][]byte{enc("inner-1"), enc("inner-2")})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.node.apis.node.ApplyBatchForwarded(ctxT(t), api.Peer{NodeID: "peer", Role: "manager"}, [][]byte{enc("before"), batch, enc("after")})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil || apiStatus(errs[1]) != http.StatusBadRequest {
		t.Fatalf("results %v; want ok, 400, ok", errs)
	}
	list, err := l.client.Secrets(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	if fmt.Sprint(names) != "[after before]" {
		t.Errorf("secrets %v; want after and before only", names)
	}
}
