package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

type fixedHealth Health

func (f fixedHealth) Health(context.Context) *Health { h := Health(f); return &h }

func TestHealth(t *testing.T) {
	for _, tt := range []struct {
		health   Health
		wantCode int
	}{
		{Health{Status: HealthReady, NodeID: "n1", Role: "manager", Leader: "n2"}, http.StatusOK},
		{Health{Status: HealthReady, NodeID: "w1", Role: "worker"}, http.StatusOK},
		{Health{Status: HealthLocked, NodeID: "n1", Role: "manager"}, http.StatusServiceUnavailable},
		{Health{Status: HealthNoLeader, NodeID: "n1", Role: "manager"}, http.StatusServiceUnavailable},
		{Health{Status: HealthUninitialized}, http.StatusServiceUnavailable},
	} {
		t.Run(tt.health.Status+"/"+string(tt.health.Role), func(t *testing.T) {
			srv := httptest.NewServer(specChecked(t, HealthHandler(fixedHealth(tt.health))))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/v1/health")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("got %d %q; want %d application/json", resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantCode)
			}
			// The client reads a 503 health document as an answer.
			h, err := NewClient(srv.Client(), srv.URL).Health(context.Background())
			if err != nil || *h != tt.health {
				t.Errorf("Client.Health: got %+v, %v; want %+v", h, err, tt.health)
			}
		})
	}
	// Anything else is an error, with the server's message.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, ErrLocked)
	}))
	defer srv.Close()
	if h, err := NewClient(srv.Client(), srv.URL).Health(context.Background()); err == nil || StatusOf(err) != http.StatusLocked {
		t.Errorf("Client.Health of a 423: got %+v, %v; want the 423 error", h, err)
	}
}
