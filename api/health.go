package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/holdfast/holdfast/ca"
)

// Health states, as GET /v1/health reports them.
const (
	HealthReady         = "ready"
	HealthLocked        = "locked"
	HealthNoLeader      = "no-leader"
	HealthUninitialized = "uninitialized"
	// HealthNeedsUpgrade: a manager stopped at a log entry its build
	// cannot apply (StateNeedsUpgrade).
	HealthNeedsUpgrade = "needs-upgrade"
	// HealthRemoved: the cluster removed this node (StateRemoved).
	HealthRemoved = "removed"
	// HealthCatchingUp: a manager that has not yet applied what the
	// leader had committed when it started or was unlocked
	// (StateCatchingUp).
	HealthCatchingUp = "catching-up"
)

// Health is GET /v1/health: whether this node can serve the cluster now.
// It is meant for load balancers and probes, so it says nothing secret and
// never waits for quorum.
type Health struct {
	// Status is one of the Health* states.
	Status string  `json:"status"`
	NodeID string  `json:"node_id,omitempty"`
	Role   ca.Role `json:"role,omitempty"`
	// Leader is the raft leader's node ID, empty when none is known (and
	// on a worker, which does not follow raft).
	Leader string `json:"leader,omitempty"`
}

// HTTPStatus is the status code GET /v1/health answers with: 200 when the
// node is ready, 503 otherwise, so a load balancer takes it out of rotation.
func (h *Health) HTTPStatus() int {
	if h.Status == HealthReady {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// HealthBackend is what GET /v1/health asks. It must answer at once, from
// the node's own view: no quorum, no disk.
type HealthBackend interface {
	Health(ctx context.Context) *Health
}

// HealthHandler serves GET /v1/health over b. The control socket serves it
// and so does the metrics listener, which load balancers reach over TCP.
func HealthHandler(b HealthBackend) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := b.Health(r.Context())
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, h.HTTPStatus(), h)
	})
}

// Health asks for the node's health. Unlike other calls, a 503 that carries
// a health document is an answer, not an error: the caller reads Status.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/health", nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, unwrapURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read response: %v", ErrUnreachable, err)
	}
	var h Health
	if (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable) &&
		json.Unmarshal(data, &h) == nil && h.Status != "" {
		return &h, nil
	}
	return nil, readError(resp.StatusCode, resp.Status, "GET /v1/health", data)
}
