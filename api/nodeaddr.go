package api

import (
	"context"
	"net/http"
)

// NodeAddrRequest is POST /internal/v1/self/addr: the address other nodes
// now reach the calling node at (its advertise address, after a restart
// with another one). NodeID is set only by a manager forwarding the
// request to its leader for the node named; a node asking for itself
// leaves it empty.
type NodeAddrRequest struct {
	NodeID string `json:"node_id,omitempty"`
	Addr   string `json:"addr"`
}

// SetSelfAddr asks the cluster to record the calling node's new address
// (node API): its node record and, for a manager, raft's server address.
// It returns once the leader has done both.
func (c *Client) SetSelfAddr(ctx context.Context, req NodeAddrRequest) error {
	return c.Do(ctx, "POST", "/internal/v1/self/addr", req, nil)
}

// handleNodeAddr registers the node-address route of the node API.
func handleNodeAddr(handle func(string, bool, func(http.ResponseWriter, *http.Request, Peer)), b NodeBackend) {
	handle("POST /internal/v1/self/addr", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		var req NodeAddrRequest
		if decode(w, r, &req) {
			replyEmpty(w, b.SetSelfAddr(r.Context(), p, req))
		}
	})
}
