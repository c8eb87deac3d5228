package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/secrets"
)

func TestSecretCommandsRouteToTheSecretsStore(t *testing.T) {
	f := New(nil)
	create := &SecretCreate{secrets.CreateCmd{ID: "s1", Name: "db-password", Data: []byte("hunter2"), Grants: []string{"w1"}, CreatedAt: t0}}
	errs := applyAll(t, f, initCmd(), &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}}, create)
	if errs[2] != nil {
		t.Fatalf("create: %v", errs[2])
	}
	tests := []struct {
		name string
		cmd  Command
		want error
	}{
		{"name taken", &SecretCreate{secrets.CreateCmd{ID: "s2", Name: "db-password", Data: []byte("x"), CreatedAt: t0}}, secrets.ErrNameTaken},
		{"grant to unknown node", &SecretGrant{secrets.GrantCmd{Ref: "s1", NodeID: "nobody", At: t0}}, secrets.ErrUnknownNode},
		{"revoke unknown secret", &SecretRevoke{secrets.RevokeCmd{Ref: "nope", NodeID: "w1", At: t0}}, secrets.ErrNotFound},
		{"labels", &SecretLabels{secrets.SetLabelsCmd{Ref: "db-password", Labels: map[string]string{"env": "prod"}, At: t0}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := applyAll(t, f, tt.cmd)[0]; !errors.Is(err, tt.want) {
				t.Errorf("got %v; want %v", err, tt.want)
			}
		})
	}
	// Removing a node drops it from every grant, in the same Apply.
	applyAll(t, f, &NodeRemove{ID: "w1", Until: t0})
	f.Read(func(s *State, _ uint64) {
		sec, ok := s.Secrets.Get("db-password")
		if !ok || len(sec.Grants) != 0 || sec.Labels["env"] != "prod" {
			t.Errorf("got %v; want the secret, labelled, granted to nobody", sec.Meta())
		}
	})
	// Secrets survive a snapshot and restore.
	snap, _ := f.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	g.Read(func(s *State, _ uint64) {
		sec, ok := s.Secrets.Get("s1")
		if !ok || string(sec.Data) != "hunter2" {
			t.Errorf("restored state lacks the secret")
		}
	})
	if err := applyAll(t, f, &SecretRemove{secrets.RemoveCmd{Ref: "s1"}})[0]; err != nil {
		t.Fatal(err)
	}
	f.Read(func(s *State, _ uint64) {
		if s.Secrets.Len() != 0 {
			t.Errorf("got %d secrets after rm; want 0", s.Secrets.Len())
		}
	})
	_ = raft.LogCommand
}
