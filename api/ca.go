package api

import (
	"context"
	"net/http"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// CAInfo is GET /v1/ca: the cluster's root CA certificate.
type CAInfo struct {
	RootPEM string `json:"root_pem"`
	Digest  string `json:"digest"`
}

// CARotateRequest is POST /v1/ca/rotate. With both PEMs the new root is the
// one given; without, the cluster makes one.
type CARotateRequest struct {
	CACertPEM string `json:"ca_cert_pem,omitempty"`
	CAKeyPEM  string `json:"ca_key_pem,omitempty"`
}

// String keeps the key out of logs and %v.
func (r CARotateRequest) String() string { return "CA rotate request" }

// CA rotation states.
const (
	CARotationNone     = "none"
	CARotationRotating = "rotating"
	CARotationDone     = "done"
)

// CARotation is GET /v1/ca/rotation and the answer to POST /v1/ca/rotate:
// the current or last CA rotation and its progress.
type CARotation struct {
	ID         string         `json:"id,omitempty"`
	State      string         `json:"state"`
	OldDigest  string         `json:"old_digest,omitempty"`
	NewDigest  string         `json:"new_digest,omitempty"`
	Nodes      int            `json:"nodes"`
	Converted  int            `json:"converted"`
	Waiting    []CAWaitingFor `json:"waiting"`
	StartedAt  time.Time      `json:"started_at,omitzero"`
	FinishedAt time.Time      `json:"finished_at,omitzero"`
}

// CAWaitingFor is a node a CA rotation waits for.
type CAWaitingFor struct {
	ID     string  `json:"id"`
	Role   ca.Role `json:"role"`
	Addr   string  `json:"addr"`
	Status string  `json:"status"` // as in node ls: ready, down, unknown
}

// CAView is what a node needs to follow the cluster's CA (part of
// SelfView): the roots to trust, the root that issues certificates now,
// and what to present after its own certificate.
type CAView struct {
	TrustPEM     []byte `json:"trust_pem"`
	IssuerDigest string `json:"issuer_digest"`
	// ChainPEM follows the node's certificate in what it presents: during
	// a rotation the cross-signed new root and both roots, else nothing.
	ChainPEM   []byte `json:"chain_pem,omitempty"`
	RotationID string `json:"rotation_id,omitempty"`
	// Converted: the rotation has recorded this node's new certificate.
	Converted bool `json:"converted,omitempty"`
}

// RecoverRequest is POST /join/recover, on the join protocol (no client
// certificate): a node whose certificate expired asks for a new one. CSR
// must be signed by the expired certificate's key, which proves the node
// holds it.
type RecoverRequest struct {
	CertPEM []byte `json:"cert_pem"`
	CSR     []byte `json:"csr"`
}

// CABackend is the control API's CA routes.
type CABackend interface {
	CA(ctx context.Context) (*CAInfo, error)
	RotateCA(ctx context.Context, req CARotateRequest) (*CARotation, error)
	CARotation(ctx context.Context) (*CARotation, error)
}

func caRoutes(mux *http.ServeMux, b CABackend) {
	mux.HandleFunc("GET /v1/ca", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.CA(r.Context())))
	})
	mux.HandleFunc("POST /v1/ca/rotate", func(w http.ResponseWriter, r *http.Request) {
		var req CARotateRequest
		if decode(w, r, &req) {
			reply(w, res(b.RotateCA(r.Context(), req)))
		}
	})
	mux.HandleFunc("GET /v1/ca/rotation", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.CARotation(r.Context())))
	})
}

func (c *Client) CA(ctx context.Context) (*CAInfo, error) {
	var out CAInfo
	return &out, c.Do(ctx, "GET", "/v1/ca", nil, &out)
}

func (c *Client) RotateCA(ctx context.Context, req CARotateRequest) (*CARotation, error) {
	var out CARotation
	return &out, c.Do(ctx, "POST", "/v1/ca/rotate", req, &out)
}

func (c *Client) CARotation(ctx context.Context) (*CARotation, error) {
	var out CARotation
	return &out, c.Do(ctx, "GET", "/v1/ca/rotation", nil, &out)
}

// CAConverted tells a manager (node API) that the calling node now presents
// a certificate from the rotation's new root; the manager checks the
// certificate of the connection itself.
func (c *Client) CAConverted(ctx context.Context) error {
	return c.Do(ctx, "POST", "/internal/v1/ca/converted", nil, nil)
}

// Recover is the join protocol's route for a node whose certificate
// expired.
func (c *Client) Recover(ctx context.Context, req RecoverRequest) (*RenewResponse, error) {
	var out RenewResponse
	return &out, c.Do(ctx, "POST", "/join/recover", req, &out)
}
