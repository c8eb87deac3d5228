package manager

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/holdfast/holdfast/api"
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

// TestSecretsAPIChecksBeforeWriting: a request the secret rules refuse is
// answered 400 without reaching the write path; one they allow goes to it
// (here a node without a cluster: uninitialized).
func TestSecretsAPIChecksBeforeWriting(t *testing.T) {
	reached := 0
	w := &writePath{forwardTimeout: 1, applyTimeout: 1, current: func() *incarnation { reached++; return nil }}
	s := &secretsAPI{writes: w, self: func() string { return "" }}
	ctx := context.Background()
	if _, err := s.CreateSecret(ctx, api.SecretCreateRequest{Name: "bad name!", Data: []byte("v")}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("invalid name: %v; want 400", err)
	}
	if err := s.SetSecretLabels(ctx, "s", map[string]string{"": "v"}); apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("invalid label: %v; want 400", err)
	}
	if reached != 0 {
		t.Fatalf("refused requests reached the write path %d times", reached)
	}
	if _, err := s.CreateSecret(ctx, api.SecretCreateRequest{Name: "good", Data: []byte("v")}); !errors.Is(err, api.ErrUninitialized) || reached == 0 {
		t.Fatalf("valid request: %v after %d write-path lookups; want ErrUninitialized from the write path", err, reached)
	}
}
