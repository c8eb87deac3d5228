package manager

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
)

// Two of three managers are lost; --force-new-cluster on the third keeps
// all the data and makes it a one-manager cluster others can join. Also
// when it is autolocked: unlock first, then force.
func TestForceNewCluster(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "autolocked"}[locked], func(t *testing.T) {
			var c *testCluster
			var key string
			if locked {
				c, key = newLockedCluster(t, 3)
			} else {
				c = newCluster(t, 3, 0)
			}
			if _, err := c.managers[0].client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "kept", Data: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			l := c.leader()
			survivor := c.followers(l)[0]
			for _, m := range c.managers {
				if m != survivor {
					m.halt()
				}
			}
			if locked {
				survivor.stop()
				survivor.start()
				if _, err := survivor.client.Init(ctxT(t), api.InitRequest{ForceNewCluster: true}); apiStatus(err) != http.StatusLocked {
					t.Fatalf("force on a locked node: got %v; want 423", err)
				}
				if _, err := survivor.client.Unlock(ctxT(t), api.UnlockRequest{Key: key}); err != nil {
					t.Fatal(err)
				}
			}
			// Without quorum, writes fail.
			short, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := survivor.client.RotateJoinToken(short, "worker")
			cancel()
			if err == nil {
				t.Fatal("a write succeeded without quorum")
			}
			resp, err := survivor.client.Init(ctxT(t), api.InitRequest{ForceNewCluster: true})
			if err != nil {
				t.Fatalf("force-new-cluster: %v", err)
			}
			if resp.ClusterID != c.init.ClusterID || resp.ManagerToken == "" {
				t.Errorf("got %+v; want the same cluster and its tokens", resp)
			}
			st := survivor.status()
			if !st.IsLeader || len(st.Managers) != 1 {
				t.Errorf("after forcing: leader %v, %d managers; want the only member, leading", st.IsLeader, len(st.Managers))
			}
			if _, err := survivor.client.Secret(ctxT(t), "kept"); err != nil {
				t.Errorf("data lost: %v", err)
			}
			// New managers join; writes work again.
			j := newTestNode(t, "new")
			if _, err := j.client.Join(ctxT(t), api.JoinRequest{Token: resp.ManagerToken, Addr: survivor.status().Addr}); err != nil {
				t.Fatalf("join the forced cluster: %v", err)
			}
			eventually(t, 15*time.Second, "two voters", func() bool { return len(survivor.status().Managers) == 2 })
			if _, err := j.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "after", Data: []byte("w")}); err != nil {
				t.Errorf("write after recovery: %v", err)
			}
		})
	}
}
