package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/secrets"
)

// TestConcerningWakesOnlyTheNodesAChangeConcerns: an applied entry closes
// the Concerning channel of exactly the nodes whose view it may change,
// once, and moves their index to it; the others' channels stay open and
// their index stays where it was.
func TestConcerningWakesOnlyTheNodesAChangeConcerns(t *testing.T) {
	f := New(nil)
	applyAll(t, f, initCmd(),
		&NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}},
		&NodeAdd{Node: Node{ID: "w2", Role: ca.RoleWorker}})
	create := func(id, name string, grants ...string) Command {
		return &SecretCreate{secrets.CreateCmd{ID: id, Name: name, Data: []byte("x"), Grants: grants, CreatedAt: t0}}
	}
	steps := []struct {
		name string
		cmd  Command
		want []string // the nodes woken; nil: none
	}{
		{"a secret granted to no one", create("s1", "plain"), nil},
		{"a secret granted to w1", create("s2", "for-w1", "w1"), []string{"w1"}},
		{"labels of w1's secret", &SecretLabels{secrets.SetLabelsCmd{Ref: "for-w1", Labels: map[string]string{"a": "b"}, At: t0}}, nil},
		{"a grant to w2", &SecretGrant{secrets.GrantCmd{Ref: "plain", NodeID: "w2", At: t0}}, []string{"w2"}},
		{"a revoke from w2", &SecretRevoke{secrets.RevokeCmd{Ref: "plain", NodeID: "w2", At: t0}}, []string{"w2"}},
		{"removing w1's secret", &SecretRemove{secrets.RemoveCmd{Ref: "for-w1"}}, []string{"w1"}},
		{"removing a secret granted to no one", &SecretRemove{secrets.RemoveCmd{Ref: "plain"}}, nil},
		{"a refused write", create("s3", "x", "nobody"), nil},
		{"a node's gossip address", &NodeUpdate{ID: "n1", GossipAddr: "127.0.0.1:7946"}, []string{"n1", "w1", "w2"}},
		{"a new node", &NodeAdd{Node: Node{ID: "w3", Role: ca.RoleWorker}}, []string{"n1", "w1", "w2"}},
		{"a leader's ready marker", &LeaderReady{}, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := map[string]uint64{}
			chans := map[string]<-chan struct{}{}
			for _, id := range []string{"n1", "w1", "w2"} {
				before[id], chans[id] = f.Concerning(id)
			}
			applyAll(t, f, st.cmd)
			var woken []string
			for _, id := range []string{"n1", "w1", "w2"} {
				idx, _ := f.Concerning(id)
				select {
				case <-chans[id]:
					woken = append(woken, id)
					if idx != f.Index() {
						t.Errorf("%s woken, but its index is %d; want the entry's %d", id, idx, f.Index())
					}
				default:
					if idx != before[id] {
						t.Errorf("%s not woken, but its index moved from %d to %d", id, before[id], idx)
					}
				}
			}
			if fmt.Sprint(woken) != fmt.Sprint(st.want) {
				t.Errorf("woken %v; want %v", woken, st.want)
			}
		})
	}
}

// TestConcerningEveryoneOnRestoreAndConfiguration: a restored snapshot and
// a raft configuration entry (the managers) concern every node.
func TestConcerningEveryoneOnRestoreAndConfiguration(t *testing.T) {
	f := New(nil)
	applyAll(t, f, initCmd(), &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker, CreatedAt: t0}})
	_, ch := f.Concerning("w1")
	f.Apply(&raft.Log{Index: f.Index() + 1, Type: raft.LogConfiguration, AppendedAt: time.Now()})
	select {
	case <-ch:
	default:
		t.Error("a configuration entry did not wake w1")
	}
	snap := snapshotBytes(t, f)
	g := New(nil)
	_, ch = g.Concerning("w1")
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Error("a restore did not wake w1")
	}
	if idx, _ := g.Concerning("w1"); idx != f.Index() {
		t.Errorf("after a restore at %d, w1's index is %d", f.Index(), idx)
	}
}
