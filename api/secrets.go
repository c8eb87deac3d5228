package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/holdfast/holdfast/secrets"
)

// SecretMeta is a secret without its data, as listing and inspecting show.
type SecretMeta = secrets.Meta

// SecretCreateRequest is POST /v1/secrets. Data is base64 in JSON.
type SecretCreateRequest struct {
	Name   string            `json:"name"`
	Data   []byte            `json:"data"`
	Labels map[string]string `json:"labels,omitempty"`
	Grants []string          `json:"grants,omitempty"`
}

// String never shows the data.
func (r SecretCreateRequest) String() string { return "secret create request for " + r.Name }

// SecretID answers a create.
type SecretID struct {
	ID string `json:"id"`
}

// SecretLabelsRequest is PATCH /v1/secrets/{ref}: the new, complete set.
type SecretLabelsRequest struct {
	Labels map[string]string `json:"labels"`
}

// SecretData is what a granted node fetches over the node API.
type SecretData struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Data   []byte `json:"data"`
}

// String never shows the data.
func (d SecretData) String() string { return "secret " + d.Name }

// SecretRef names a secret granted to a node, without its data.
type SecretRef struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// SecretsBackend is the control API's secret routes.
type SecretsBackend interface {
	CreateSecret(ctx context.Context, req SecretCreateRequest) (*SecretID, error)
	Secrets(ctx context.Context) ([]SecretMeta, error)
	Secret(ctx context.Context, ref string) (*SecretMeta, error)
	RemoveSecret(ctx context.Context, ref string) error
	SetSecretLabels(ctx context.Context, ref string, labels map[string]string) error
	GrantSecret(ctx context.Context, ref, nodeID string) error
	RevokeSecret(ctx context.Context, ref, nodeID string) error
}

func secretRoutes(mux *http.ServeMux, b SecretsBackend) {
	mux.HandleFunc("POST /v1/secrets", func(w http.ResponseWriter, r *http.Request) {
		var req SecretCreateRequest
		if decode(w, r, &req) {
			reply(w, res(b.CreateSecret(r.Context(), req)))
		}
	})
	mux.HandleFunc("GET /v1/secrets", func(w http.ResponseWriter, r *http.Request) {
		list, err := b.Secrets(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSONArray(w, list)
	})
	mux.HandleFunc("GET /v1/secrets/{ref}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.Secret(r.Context(), r.PathValue("ref"))))
	})
	mux.HandleFunc("DELETE /v1/secrets/{ref}", func(w http.ResponseWriter, r *http.Request) {
		replyEmpty(w, b.RemoveSecret(r.Context(), r.PathValue("ref")))
	})
	mux.HandleFunc("PATCH /v1/secrets/{ref}", func(w http.ResponseWriter, r *http.Request) {
		var req SecretLabelsRequest
		if decode(w, r, &req) {
			replyEmpty(w, b.SetSecretLabels(r.Context(), r.PathValue("ref"), req.Labels))
		}
	})
	mux.HandleFunc("POST /v1/secrets/{ref}/grants/{node}", func(w http.ResponseWriter, r *http.Request) {
		replyEmpty(w, b.GrantSecret(r.Context(), r.PathValue("ref"), r.PathValue("node")))
	})
	mux.HandleFunc("DELETE /v1/secrets/{ref}/grants/{node}", func(w http.ResponseWriter, r *http.Request) {
		replyEmpty(w, b.RevokeSecret(r.Context(), r.PathValue("ref"), r.PathValue("node")))
	})
}

func secretPath(ref string) string { return "/v1/secrets/" + url.PathEscape(ref) }

func (c *Client) CreateSecret(ctx context.Context, req SecretCreateRequest) (*SecretID, error) {
	var out SecretID
	return &out, c.Do(ctx, "POST", "/v1/secrets", req, &out)
}

func (c *Client) Secrets(ctx context.Context) ([]SecretMeta, error) {
	var out []SecretMeta
	return out, c.getList(ctx, "/v1/secrets", &out)
}

func (c *Client) Secret(ctx context.Context, ref string) (*SecretMeta, error) {
	var out SecretMeta
	return &out, c.Do(ctx, "GET", secretPath(ref), nil, &out)
}

func (c *Client) RemoveSecret(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", secretPath(ref), nil, nil)
}

func (c *Client) SetSecretLabels(ctx context.Context, ref string, labels map[string]string) error {
	if labels == nil {
		labels = map[string]string{}
	}
	return c.Do(ctx, "PATCH", secretPath(ref), SecretLabelsRequest{Labels: labels}, nil)
}

func (c *Client) GrantSecret(ctx context.Context, ref, nodeID string) error {
	return c.Do(ctx, "POST", secretPath(ref)+"/grants/"+url.PathEscape(nodeID), nil, nil)
}

func (c *Client) RevokeSecret(ctx context.Context, ref, nodeID string) error {
	return c.Do(ctx, "DELETE", secretPath(ref)+"/grants/"+url.PathEscape(nodeID), nil, nil)
}

// FetchSecret is a granted node's fetch of one secret over the node API.
func (c *Client) FetchSecret(ctx context.Context, id string) (*SecretData, error) {
	var out SecretData
	return &out, c.Do(ctx, "GET", "/internal/v1/secrets/"+url.PathEscape(id), nil, &out)
}
