package manager

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/secrets"
)

// TestHealthAPI: health is this node's own view, at once, from the lock
// state and the running incarnation alone.
func TestHealthAPI(t *testing.T) {
	worker := &incarnation{info: &nodeInfo{NodeID: "w1"}}
	for _, tc := range []struct {
		name   string
		locked *lockState
		inc    *incarnation
		want   api.Health
	}{
		{"locked", &lockState{info: &nodeInfo{NodeID: "m1", Role: roleManager}}, nil, api.Health{Status: api.HealthLocked, NodeID: "m1", Role: roleManager}},
		{"uninitialized", nil, nil, api.Health{Status: api.HealthUninitialized}},
		{"worker", nil, worker, api.Health{Status: api.HealthReady, NodeID: "w1", Role: roleWorker}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &healthAPI{current: func() *incarnation { return tc.inc }, locked: func() *lockState { return tc.locked }}
			if got := h.Health(context.Background()); *got != tc.want {
				t.Fatalf("got %+v; want %+v", *got, tc.want)
			}
		})
	}
}

// fakeProposer is the write path as an adapter sees it: it records the
// commands applied and answers them with err.
type fakeProposer struct {
	cmds []fsm.Command
	err  error
}

func (p *fakeProposer) apply(_ context.Context, cmd fsm.Command) error {
	p.cmds = append(p.cmds, cmd)
	return p.err
}

func (p *fakeProposer) onLeader(context.Context, func(context.Context, *raftNode) error, func(context.Context, *api.Client) error) error {
	return errors.New("not used")
}

func (p *fakeProposer) linearize(context.Context) (*raftNode, error) {
	return nil, errors.New("not used")
}

func (p *fakeProposer) readState(context.Context, func(s *fsm.State) error) error {
	return errors.New("not used")
}

// TestSecretsAPIWrites: the secret routes check what the secret rules
// refuse before anything is written (400), and otherwise write one command
// carrying the request, "self" naming this node; a write's error gets its
// status from the secret rules.
func TestSecretsAPIWrites(t *testing.T) {
	p := &fakeProposer{}
	s := &secretsAPI{writes: p, self: func() string { return "n1" }, now: time.Now}
	ctx := context.Background()
	if _, err := s.CreateSecret(ctx, api.SecretCreateRequest{Name: "bad name!", Data: []byte("v")}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("invalid name: %v; want 400", err)
	}
	if err := s.SetSecretLabels(ctx, "s", map[string]string{"": "v"}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("invalid label: %v; want 400", err)
	}
	if len(p.cmds) != 0 {
		t.Fatalf("refused requests wrote %d commands", len(p.cmds))
	}

	id, err := s.CreateSecret(ctx, api.SecretCreateRequest{Name: "good", Data: []byte("v"), Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.GrantSecret(ctx, "good", "self"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeSecret(ctx, "good", "n2"); err != nil {
		t.Fatal(err)
	}
	if len(p.cmds) != 3 {
		t.Fatalf("%d commands written; want 3", len(p.cmds))
	}
	if c, ok := p.cmds[0].(*fsm.SecretCreate); !ok || c.ID != id.ID || c.Name != "good" || string(c.Data) != "v" || c.Labels["k"] != "v" {
		t.Errorf("create wrote %+v; want the request with ID %s", p.cmds[0], id.ID)
	}
	if c, ok := p.cmds[1].(*fsm.SecretGrant); !ok || c.Ref != "good" || c.NodeID != "n1" {
		t.Errorf("grant to self wrote %+v; want node n1", p.cmds[1])
	}
	if c, ok := p.cmds[2].(*fsm.SecretRevoke); !ok || c.NodeID != "n2" {
		t.Errorf("revoke wrote %+v; want node n2", p.cmds[2])
	}

	p.err = fmt.Errorf("apply: %w", secrets.ErrNameTaken)
	if _, err := s.CreateSecret(ctx, api.SecretCreateRequest{Name: "good", Data: []byte("v")}); apiStatus(err) != http.StatusConflict {
		t.Fatalf("name taken: %v; want 409", err)
	}
}
