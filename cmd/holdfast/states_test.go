package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/api"
)

// TestPrintStatusStates: status of a removed node says what happened and
// how to join again (no leader or quorum talk); of a catching-up manager,
// how far it is.
func TestPrintStatusStates(t *testing.T) {
	for _, tc := range []struct {
		name      string
		st        api.Status
		want, not []string
	}{
		{"removed manager", api.Status{NodeID: "m1", ClusterID: "c1", Role: "manager", State: api.StateRemoved},
			[]string{"State:       removed", "was removed from the cluster", "'holdfast join-token manager'", "holdfast join --token TOKEN HOST:PORT"},
			[]string{"quorum", "Leader:", "Autolock:"}},
		{"removed worker", api.Status{NodeID: "w1", ClusterID: "c1", Role: "worker", State: api.StateRemoved},
			[]string{"Role:        worker", "'holdfast join-token worker'"}, nil},
		{"catching up", api.Status{NodeID: "m1", ClusterID: "c1", Role: "manager", State: api.StateCatchingUp,
			Raft: api.RaftStatus{AppliedIndex: 3}, Leader: api.Leader{NodeID: "m2", Addr: "a"}, CatchingUp: &api.CatchingUp{AppliedIndex: 3, TargetIndex: 40}},
			[]string{"State:       catching-up", "applied index 3 of 40"}, nil},
		{"catching up, no leader", api.Status{NodeID: "m1", ClusterID: "c1", Role: "manager", State: api.StateCatchingUp, CatchingUp: &api.CatchingUp{}},
			[]string{"none: no leader is elected", "not yet learnt the leader's commit index"}, []string{"of 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printStatus(&b, &tc.st); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, b.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("status has %q:\n%s", n, b.String())
				}
			}
		})
	}
}
