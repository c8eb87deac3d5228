package manager

import (
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// A manager that raft has added as a voter but that has not caught up when
// the join's wait ends stays a member and keeps catching up: the join
// succeeds, and the cluster is not left with a voter that never answers
// (the chaos soak found a rejoined manager wiped after raft had added it,
// and every manager then saw that voter unreachable).
func TestJoinNotCaughtUpStaysAVoter(t *testing.T) {
	c := newCluster(t, 1, 0)
	tn := newTestNode(t, "m1", func(cfg *Config) { cfg.catchUpWait = time.Nanosecond })
	resp, err := tn.client.Join(ctxT(t), api.JoinRequest{Token: c.init.ManagerToken, Addr: c.init.Addr})
	if err != nil {
		t.Fatalf("join that raft accepted but whose catch-up wait ended: %v; want success (it is a voter)", err)
	}
	l := c.managers[0]
	eventually(t, 20*time.Second, "m1 ready and a reachable voter on the leader", func() bool {
		st := tn.status()
		if st.State != api.StateReady || st.NodeID != resp.NodeID {
			return false
		}
		ls := l.status()
		for _, m := range ls.Managers {
			if m.NodeID == resp.NodeID {
				return m.Voter && m.Reachable && len(ls.Managers) == 2
			}
		}
		return false
	})
}
