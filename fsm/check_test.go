package fsm

import (
	"errors"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/secrets"
)

// TestCheckMatchesApply: for each command, Check refuses exactly what
// Apply would refuse, with the same sentinel, and changes nothing.
func TestCheckMatchesApply(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	base := func() *State {
		s := newState()
		s.Cluster = &Cluster{ID: "c1", Settings: Settings{CertExpiry: time.Hour, KeyRotation: time.Minute}}
		s.Nodes["m1"] = &Node{ID: "m1", Role: ca.RoleManager}
		s.Nodes["w1"] = &Node{ID: "w1", Role: ca.RoleWorker}
		if err := s.Secrets.ApplyCreate(secrets.CreateCmd{ID: "s1", Name: "db", Data: []byte("x"), CreatedAt: t0}, s.nodeExists); err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name string
		cmd  Command
		err  error // nil: accepted
	}{
		{"create", &SecretCreate{secrets.CreateCmd{ID: "s2", Name: "api", Data: []byte("y"), CreatedAt: t0}}, nil},
		{"create, name taken", &SecretCreate{secrets.CreateCmd{ID: "s2", Name: "db", Data: []byte("y"), CreatedAt: t0}}, secrets.ErrNameTaken},
		{"create, unknown grant", &SecretCreate{secrets.CreateCmd{ID: "s2", Name: "api", Data: []byte("y"), Grants: []string{"nobody"}, CreatedAt: t0}}, secrets.ErrUnknownNode},
		{"remove unknown", &SecretRemove{secrets.RemoveCmd{Ref: "nope"}}, secrets.ErrNotFound},
		{"grant unknown node", &SecretGrant{secrets.GrantCmd{Ref: "db", NodeID: "nobody", At: t0}}, secrets.ErrUnknownNode},
		{"grant", &SecretGrant{secrets.GrantCmd{Ref: "db", NodeID: "w1", At: t0}}, nil},
		{"revoke unknown secret", &SecretRevoke{secrets.RevokeCmd{Ref: "nope", NodeID: "w1", At: t0}}, secrets.ErrNotFound},
		{"labels of unknown secret", &SecretLabels{secrets.SetLabelsCmd{Ref: "nope", At: t0}}, secrets.ErrNotFound},
		{"demote the last manager", &NodeSetRole{ID: "m1", Role: ca.RoleWorker}, ErrLastManager},
		{"promote unknown", &NodeSetRole{ID: "nobody", Role: ca.RoleManager}, ErrNodeNotFound},
		{"remove unknown node", &NodeRemove{ID: "nobody", Until: t0}, ErrNodeNotFound},
		{"add existing node", &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}}, ErrNodeExists},
		{"update unknown node", &NodeUpdate{ID: "nobody", Addr: "h:1"}, ErrNodeNotFound},
		{"bad setting", &SettingsUpdate{Settings: Settings{CertExpiry: time.Second, KeyRotation: time.Minute}}, ErrBadSetting},
		{"init again", &ClusterInit{Cluster: Cluster{ID: "c2"}, First: Node{ID: "m9", Role: ca.RoleManager}}, ErrAlreadyInitialized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			before, _ := EncodeSnapshot(s, 0)
			cerr := s.Check(tc.cmd)
			after, _ := EncodeSnapshot(s, 0)
			if string(before) != string(after) {
				t.Fatal("Check changed the state")
			}
			aerr := applyTo(s, tc.cmd)
			if (cerr == nil) != (aerr == nil) || (tc.err == nil) != (cerr == nil) {
				t.Fatalf("Check = %v, Apply = %v; want %v", cerr, aerr, tc.err)
			}
			if tc.err != nil && (!errors.Is(cerr, tc.err) || !errors.Is(aerr, tc.err)) {
				t.Fatalf("Check = %v, Apply = %v; want both %v", cerr, aerr, tc.err)
			}
		})
	}
}
