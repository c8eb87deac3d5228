package api

import (
	"context"
	"io"
	"net/http"
	"strconv"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/strictjson"
)

// Backend is what the control API serves, as one interface: every part
// below. NewControlMux takes the parts from separate implementations.
type Backend interface {
	LifecycleBackend
	ClusterBackend
	SecretsBackend
	KeysBackend
	SnapshotBackend
	HealthBackend
	CABackend
}

// LifecycleBackend is the control API's routes that start or end a node's
// part in a cluster: init, join, leave, and unlock of a locked node.
type LifecycleBackend interface {
	Init(ctx context.Context, req InitRequest) (*InitResponse, error)
	Join(ctx context.Context, req JoinRequest) (*JoinResponse, error)
	Leave(ctx context.Context, req LeaveRequest) error
	Unlock(ctx context.Context, req UnlockRequest) (*UnlockResponse, error)
}

// ClusterBackend is the control API's routes over a running cluster:
// status, settings, nodes and their roles, join tokens, the unlock key.
type ClusterBackend interface {
	Status(ctx context.Context) (*Status, error)
	Update(ctx context.Context, req UpdateRequest) (*UpdateResponse, error)
	Nodes(ctx context.Context) ([]Node, error)
	Node(ctx context.Context, id string) (*Node, error)
	RemoveNode(ctx context.Context, id string, force bool) error
	SetRole(ctx context.Context, id string, role ca.Role) error
	JoinToken(ctx context.Context, role ca.Role) (*JoinToken, error)
	RotateJoinToken(ctx context.Context, role ca.Role) (*JoinToken, error)
	UnlockKey(ctx context.Context) (*UnlockKeyResponse, error)
	RotateUnlockKey(ctx context.Context, req RotateUnlockKeyRequest) (*UnlockKeyResponse, error)
}

// ControlBackends are the parts the control API serves, each from its own
// implementation. Every field must be set.
type ControlBackends struct {
	Lifecycle LifecycleBackend
	Cluster   ClusterBackend
	Secrets   SecretsBackend
	Keys      KeysBackend
	Snapshot  SnapshotBackend
	Health    HealthBackend
	CA        CABackend
}

// maxBody bounds every request body. Secrets are at most
// 500 KiB, base64 in JSON.
const maxBody = 1 << 20

// NewControlHandler returns the control API's routes over b.
func NewControlHandler(b Backend) http.Handler {
	return NewControlMux(ControlBackends{Lifecycle: b, Cluster: b, Secrets: b, Keys: b, Snapshot: b, Health: b, CA: b})
}

// NewControlMux returns the control API's routes over its parts.
func NewControlMux(p ControlBackends) http.Handler {
	b, lc := p.Cluster, p.Lifecycle
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.Status(r.Context())))
	})
	mux.HandleFunc("POST /v1/init", func(w http.ResponseWriter, r *http.Request) {
		var req InitRequest
		if !decode(w, r, &req) {
			return
		}
		reply(w, res(lc.Init(r.Context(), req)))
	})
	mux.HandleFunc("POST /v1/join", func(w http.ResponseWriter, r *http.Request) {
		var req JoinRequest
		if !decode(w, r, &req) {
			return
		}
		reply(w, res(lc.Join(r.Context(), req)))
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		var req LeaveRequest
		if !decode(w, r, &req) {
			return
		}
		replyEmpty(w, lc.Leave(r.Context(), req))
	})
	mux.HandleFunc("PATCH /v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		var req UpdateRequest
		if !decode(w, r, &req) {
			return
		}
		reply(w, res(b.Update(r.Context(), req)))
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.Nodes(r.Context())))
	})
	mux.HandleFunc("GET /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.Node(r.Context(), r.PathValue("id"))))
	})
	mux.HandleFunc("DELETE /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		force, err := boolQuery(r, "force")
		if err != nil {
			writeError(w, err)
			return
		}
		replyEmpty(w, b.RemoveNode(r.Context(), r.PathValue("id"), force))
	})
	mux.HandleFunc("POST /v1/nodes/{id}/promote", func(w http.ResponseWriter, r *http.Request) {
		replyEmpty(w, b.SetRole(r.Context(), r.PathValue("id"), ca.RoleManager))
	})
	mux.HandleFunc("POST /v1/nodes/{id}/demote", func(w http.ResponseWriter, r *http.Request) {
		replyEmpty(w, b.SetRole(r.Context(), r.PathValue("id"), ca.RoleWorker))
	})
	mux.HandleFunc("GET /v1/join-tokens/{role}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.JoinToken(r.Context(), ca.Role(r.PathValue("role")))))
	})
	mux.HandleFunc("POST /v1/join-tokens/{role}/rotate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.RotateJoinToken(r.Context(), ca.Role(r.PathValue("role")))))
	})
	mux.HandleFunc("POST /v1/unlock", func(w http.ResponseWriter, r *http.Request) {
		var req UnlockRequest
		if decode(w, r, &req) {
			reply(w, res(lc.Unlock(r.Context(), req)))
		}
	})
	mux.HandleFunc("GET /v1/unlock-key", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.UnlockKey(r.Context())))
	})
	mux.HandleFunc("POST /v1/unlock-key/rotate", func(w http.ResponseWriter, r *http.Request) {
		var req RotateUnlockKeyRequest
		if decode(w, r, &req) {
			reply(w, res(b.RotateUnlockKey(r.Context(), req)))
		}
	})
	secretRoutes(mux, p.Secrets)
	keyRoutes(mux, p.Keys)
	snapshotRoutes(mux, p.Snapshot)
	mux.Handle("GET /v1/health", HealthHandler(p.Health))
	caRoutes(mux, p.CA)
	return Routes(mux, "")
}

// Routes serves mux's routes and answers a request no route takes with a
// JSON error: 405 (method_not_allowed) with an Allow header when the path
// has routes for other methods, else 404 (not_found), whose message ends
// with hint when there is one. mux must have no catch-all "/" route.
func Routes(mux *http.ServeMux, hint string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// No route: the mux knows whether the path has other methods.
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeError(w, Errorf(CodeMethodNotAllowed, "method %s is not allowed on %s; it takes %s", r.Method, r.URL.Path, allow))
		case http.StatusNotFound:
			if hint != "" {
				hint = ": " + hint
			}
			writeError(w, Errorf(CodeNotFound, "no route %s %s%s", r.Method, r.URL.Path, hint))
		default: // a redirect to the cleaned path
			h.ServeHTTP(w, r)
		}
	})
}

// headerRecorder keeps the status and headers of a mux's own answer,
// which Routes replaces with a JSON error.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *headerRecorder) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}

// result is a backend call's outcome.
type result struct {
	v   any
	err error
}

func res[T any](v T, err error) result { return result{v, err} }

// reply writes the value as JSON with 200, or the error.
func reply(w http.ResponseWriter, r result) {
	if r.err != nil {
		writeError(w, r.err)
		return
	}
	writeJSON(w, http.StatusOK, r.v)
}

func replyEmpty(w http.ResponseWriter, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// decode reads a JSON body strictly into v; on failure it answers 400 (413
// for an oversize body) and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := readBody(r, maxBody)
	if err == nil {
		err = decodeBody(data, v)
	}
	if err != nil {
		writeError(w, err)
		return false
	}
	return true
}

// readBody reads r's body, and one byte more than limit if the body is
// longer. A body that says its length is read into space of that size,
// not into a buffer grown from nothing (most writes carry a secret).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength <= 0 || r.ContentLength > limit {
		data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			return nil, Errorf(CodeInvalidArgument, "read request body: %v", err)
		}
		return data, nil
	}
	data := make([]byte, r.ContentLength, r.ContentLength+1)
	if _, err := io.ReadFull(r.Body, data); err != nil {
		return nil, Errorf(CodeInvalidArgument, "read request body: %v", err)
	}
	return data, nil
}

// decodeBody decodes the one JSON document in a request body into v,
// refusing unknown fields, trailing data and bodies over the limit, with a
// 400 or 413 *Error.
func decodeBody(data []byte, v any) error {
	if len(data) > maxBody {
		return Errorf(CodeTooLarge, "request body is larger than %d bytes", maxBody)
	}
	if len(data) == 0 {
		data = []byte("{}")
	}
	if err := strictjson.Unmarshal(data, v); err != nil {
		return Errorf(CodeInvalidArgument, "invalid request body: %v", err)
	}
	return nil
}

func boolQuery(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, Errorf(CodeInvalidArgument, "query parameter %s: %q is not a boolean", name, v)
	}
	return b, nil
}

func uintQuery(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, Errorf(CodeInvalidArgument, "query parameter %s: %q is not a number", name, v)
	}
	return n, nil
}
