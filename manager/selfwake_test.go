package manager

import (
	"testing"

	"github.com/holdfast/holdfast/api"
)

// TestSelfWakesOnlyForWhatConcernsTheNode: a worker's long poll is not
// answered because of a secret write that does not concern it; it is
// answered by the next one that does, with that write in the view.
func TestSelfWakesOnlyForWhatConcernsTheNode(t *testing.T) {
	c := newCluster(t, 1, 1)
	m, wid := c.managers[0], c.workers[0].status().NodeID
	before := m.node.current().rn().fsm.Index()
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "for-no-one", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	views := make(chan *api.SelfView, 1)
	errs := make(chan error, 1)
	go func() {
		v, err := m.node.apis.node.Self(ctxT(t), api.Peer{NodeID: wid, Role: roleWorker}, before)
		views <- v
		errs <- err
	}()
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "for-the-worker", Data: []byte("y"), Grants: []string{wid}}); err != nil {
		t.Fatal(err)
	}
	v, err := <-views, <-errs
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range v.Secrets {
		names = append(names, s.Name)
	}
	if len(names) != 1 || names[0] != "for-the-worker" {
		t.Fatalf("the poll answered at index %d with secrets %v; want it to wait for the grant, and [for-the-worker]", v.Index, names)
	}
}
