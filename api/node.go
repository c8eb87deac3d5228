package api

import (
	"context"
	"crypto/x509"
	"net/http"
	"strconv"

	"github.com/holdfast/holdfast/ca"
)

// Peer is the authenticated caller of the node API, from its certificate.
type Peer struct {
	NodeID string
	Role   ca.Role
	// Removed is a peer the cluster removed: every route answers it
	// ErrRemoved, whatever its Role.
	Removed bool
}

// PeerFunc returns the caller's identity; false when there is none (which the
// transport never lets through, but the handler does not assume it).
type PeerFunc func(r *http.Request) (Peer, bool)

// NodeBackend is what the node API serves to other nodes.
type NodeBackend interface {
	// Manager-only routes: a follower forwards operator requests here.
	ApplyForwarded(ctx context.Context, from Peer, cmd []byte) error
	// ApplyBatchForwarded applies commands forwarded together, returning
	// each one's result (nil or what ApplyForwarded would have returned),
	// or one error for the whole batch when none was carried out.
	ApplyBatchForwarded(ctx context.Context, from Peer, cmds [][]byte) ([]error, error)
	ReadIndex(ctx context.Context, from Peer) (*ReadIndex, error)
	JoinForwarded(ctx context.Context, from Peer, req JoinGrantRequest) (*JoinGrant, error)
	AddVoter(ctx context.Context, from Peer, req AddVoterRequest) error
	SetRoleForwarded(ctx context.Context, from Peer, id string, role ca.Role) error
	RemoveNodeForwarded(ctx context.Context, from Peer, id string, force bool) error
	RotateJoinTokenForwarded(ctx context.Context, from Peer, role ca.Role) (*JoinToken, error)
	Reachability(ctx context.Context, from Peer) (*Reachability, error)
	// Level says what this manager's build can apply.
	Level(ctx context.Context, from Peer) (*LevelInfo, error)
	// Routes for any node of the cluster.
	Self(ctx context.Context, from Peer, afterIndex uint64) (*SelfView, error)
	Renew(ctx context.Context, from Peer, req RenewRequest) (*RenewResponse, error)
	LeaveNode(ctx context.Context, from Peer, req LeaveNodeRequest) error
	ClusterStatus(ctx context.Context, from Peer) (*Status, error)
	// FetchSecret returns a secret's data to a node it is granted to.
	FetchSecret(ctx context.Context, from Peer, id string) (*SecretData, error)
	// SetGossipAddr records where the calling node gossips.
	SetGossipAddr(ctx context.Context, from Peer, req GossipAddrRequest) error
	// CAConverted records that the caller presents a certificate from the
	// CA rotation's new root; leaf is the certificate of its connection
	// (verified by the transport), nil if none.
	CAConverted(ctx context.Context, from Peer, leaf *x509.Certificate) error
	// SetSelfAddr records the caller's new address (nodeaddr.go).
	SetSelfAddr(ctx context.Context, from Peer, req NodeAddrRequest) error
}

// errNotAuthorized is answered to a caller without a usable certificate, or
// one the cluster no longer accepts (removed, or demoted since).
var errNotAuthorized = Errorf(CodeUnauthenticated, "this node's certificate is not accepted by the cluster")

// errManagerOnly is answered to a worker calling a manager-only route.
var errManagerOnly = Errorf(CodePermissionDenied, "this route is for managers only")

// NewNodeHandler returns the node API's routes over b. Every route needs an
// authenticated peer; manager-only routes refuse workers with 403.
func NewNodeHandler(b NodeBackend, peer PeerFunc) http.Handler {
	mux := http.NewServeMux()
	// handle registers a route; managerOnly routes refuse workers.
	handle := func(pattern string, managerOnly bool, fn func(w http.ResponseWriter, r *http.Request, p Peer)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			p, ok := peer(r)
			if !ok {
				writeError(w, errNotAuthorized)
				return
			}
			if p.Removed {
				writeError(w, ErrRemoved)
				return
			}
			if managerOnly && p.Role != ca.RoleManager {
				writeError(w, errManagerOnly)
				return
			}
			fn(w, r, p)
		})
	}
	handle("POST /internal/v1/apply", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		cmd, err := readBody(r, 2*maxBody-1)
		if err != nil {
			writeError(w, err)
			return
		}
		replyEmpty(w, b.ApplyForwarded(r.Context(), p, cmd))
	})
	handle("POST /internal/v1/apply-batch", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		body, err := readBody(r, MaxApplyBatchBody)
		if err != nil {
			writeError(w, err)
			return
		}
		cmds, err := ParseApplyBatch(body)
		if err != nil {
			writeError(w, err)
			return
		}
		errs, err := b.ApplyBatchForwarded(r.Context(), p, cmds)
		if err == nil && len(errs) != len(cmds) {
			err = Errorf(CodeInternal, "%d results for %d commands", len(errs), len(cmds))
		}
		if err != nil {
			writeError(w, err)
			return
		}
		out := ApplyBatchResponse{Results: make([]ApplyResult, len(errs))}
		for i, e := range errs {
			out.Results[i] = ApplyResult{Status: http.StatusOK}
			if e != nil {
				out.Results[i] = ApplyResult{Status: StatusOf(e), Error: e.Error(), Code: CodeOf(e)}
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
	handle("GET /internal/v1/read-index", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		reply(w, res(b.ReadIndex(r.Context(), p)))
	})
	handle("POST /internal/v1/join", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		var req JoinGrantRequest
		if decodeJoin(w, r, &req) {
			reply(w, res(b.JoinForwarded(r.Context(), p, req)))
		}
	})
	handle("GET /internal/v1/level", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		reply(w, res(b.Level(r.Context(), p)))
	})
	handle("POST /internal/v1/raft/add-voter", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		var req AddVoterRequest
		if decode(w, r, &req) {
			replyEmpty(w, b.AddVoter(r.Context(), p, req))
		}
	})
	handle("POST /internal/v1/nodes/{id}/promote", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		replyEmpty(w, b.SetRoleForwarded(r.Context(), p, r.PathValue("id"), ca.RoleManager))
	})
	handle("POST /internal/v1/nodes/{id}/demote", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		replyEmpty(w, b.SetRoleForwarded(r.Context(), p, r.PathValue("id"), ca.RoleWorker))
	})
	handle("DELETE /internal/v1/nodes/{id}", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		force, err := boolQuery(r, "force")
		if err != nil {
			writeError(w, err)
			return
		}
		replyEmpty(w, b.RemoveNodeForwarded(r.Context(), p, r.PathValue("id"), force))
	})
	handle("POST /internal/v1/join-tokens/{role}/rotate", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		reply(w, res(b.RotateJoinTokenForwarded(r.Context(), p, ca.Role(r.PathValue("role")))))
	})
	handle("GET /internal/v1/reachability", true, func(w http.ResponseWriter, r *http.Request, p Peer) {
		reply(w, res(b.Reachability(r.Context(), p)))
	})
	handle("GET /internal/v1/self", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		idx, err := uintQuery(r, "index")
		if err != nil {
			writeError(w, err)
			return
		}
		reply(w, res(b.Self(r.Context(), p, idx)))
	})
	handle("POST /internal/v1/renew", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		var req RenewRequest
		if decode(w, r, &req) {
			reply(w, res(b.Renew(r.Context(), p, req)))
		}
	})
	handle("POST /internal/v1/leave", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		var req LeaveNodeRequest
		if decode(w, r, &req) {
			replyEmpty(w, b.LeaveNode(r.Context(), p, req))
		}
	})
	handle("GET /internal/v1/secrets/{id}", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		reply(w, res(b.FetchSecret(r.Context(), p, r.PathValue("id"))))
	})
	handle("POST /internal/v1/self/gossip-addr", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		var req GossipAddrRequest
		if decode(w, r, &req) {
			replyEmpty(w, b.SetGossipAddr(r.Context(), p, req))
		}
	})
	handle("POST /internal/v1/ca/converted", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		var leaf *x509.Certificate
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			leaf = r.TLS.PeerCertificates[0]
		}
		replyEmpty(w, b.CAConverted(r.Context(), p, leaf))
	})
	handleNodeAddr(handle, b)
	handle("GET /internal/v1/status", false, func(w http.ResponseWriter, r *http.Request, p Peer) {
		reply(w, res(b.ClusterStatus(r.Context(), p)))
	})
	return Routes(mux, "")
}

// JoinBackend grants certificates to nodes that present a join token.
type JoinBackend interface {
	Grant(ctx context.Context, req JoinGrantRequest) (*JoinGrant, error)
	// Recover renews a certificate that expired (see RecoverRequest).
	Recover(ctx context.Context, req RecoverRequest) (*RenewResponse, error)
}

// NewJoinHandler returns the join API's routes: joining, and recovering an
// expired certificate.
func NewJoinHandler(b JoinBackend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /join", func(w http.ResponseWriter, r *http.Request) {
		var req JoinGrantRequest
		if decodeJoin(w, r, &req) {
			reply(w, res(b.Grant(r.Context(), req)))
		}
	})
	mux.HandleFunc("POST /join/recover", func(w http.ResponseWriter, r *http.Request) {
		var req RecoverRequest
		if decode(w, r, &req) {
			reply(w, res(b.Recover(r.Context(), req)))
		}
	})
	return Routes(mux, "")
}

// decodeJoin reads a join request: its body, and the joiner's level from
// the query.
func decodeJoin(w http.ResponseWriter, r *http.Request, req *JoinGrantRequest) bool {
	if !decode(w, r, req) {
		return false
	}
	if v := r.URL.Query().Get("level"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 0 {
			writeError(w, Errorf(CodeInvalidArgument, "level %q: want a number", v))
			return false
		}
		req.Level = l
	}
	return true
}
