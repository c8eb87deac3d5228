package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
)

// Client talks to one holdfast API: the control socket, another node's node
// API, or a join endpoint. Failures the server reports come back as *Error;
// failures to reach it wrap ErrUnreachable.
type Client struct {
	hc   *http.Client
	base string
}

// ErrUnreachable wraps failures to reach the server at all.
var ErrUnreachable = errors.New("cannot reach the holdfast daemon")

// NewClient returns a client of the API at base (e.g. "https://10.0.0.1:4242")
// using hc, which carries the transport (mutual TLS for the node API).
func NewClient(hc *http.Client, base string) *Client {
	return &Client{hc: hc, base: base}
}

// NewUnixClient returns a client of the control API on a unix socket.
func NewUnixClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{hc: &http.Client{Transport: tr}, base: "http://holdfast"}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends in (JSON, or raw bytes when in is []byte) and decodes the answer
// into out (nil to discard).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.open(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: read response: %v", ErrUnreachable, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// open sends the request and returns the response of a 2xx answer, whose
// body the caller reads and closes; any other answer comes back as *Error,
// a failure to reach the server wraps ErrUnreachable.
func (c *Client) open(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	contentType := "application/json"
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
		contentType = "application/octet-stream"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, unwrapURL(err))
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, readError(resp.StatusCode, resp.Status, method+" "+path, data)
	}
	return resp, nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// --- control API ---

func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.Do(ctx, "GET", "/v1/status", nil, &s)
}

func (c *Client) Init(ctx context.Context, req InitRequest) (*InitResponse, error) {
	var out InitResponse
	return &out, c.Do(ctx, "POST", "/v1/init", req, &out)
}

func (c *Client) Join(ctx context.Context, req JoinRequest) (*JoinResponse, error) {
	var out JoinResponse
	return &out, c.Do(ctx, "POST", "/v1/join", req, &out)
}

func (c *Client) Leave(ctx context.Context, req LeaveRequest) error {
	return c.Do(ctx, "POST", "/v1/leave", req, nil)
}

func (c *Client) Update(ctx context.Context, req UpdateRequest) (*UpdateResponse, error) {
	var out UpdateResponse
	return &out, c.Do(ctx, "PATCH", "/v1/cluster", req, &out)
}

func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	return out, c.Do(ctx, "GET", "/v1/nodes", nil, &out)
}

func (c *Client) Node(ctx context.Context, id string) (*Node, error) {
	var out Node
	return &out, c.Do(ctx, "GET", "/v1/nodes/"+url.PathEscape(id), nil, &out)
}

func (c *Client) RemoveNode(ctx context.Context, id string, force bool) error {
	return c.Do(ctx, "DELETE", "/v1/nodes/"+url.PathEscape(id)+"?force="+strconv.FormatBool(force), nil, nil)
}

func (c *Client) Promote(ctx context.Context, id string) error {
	return c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(id)+"/promote", nil, nil)
}

func (c *Client) Demote(ctx context.Context, id string) error {
	return c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(id)+"/demote", nil, nil)
}

func (c *Client) JoinToken(ctx context.Context, role string) (*JoinToken, error) {
	var out JoinToken
	return &out, c.Do(ctx, "GET", "/v1/join-tokens/"+url.PathEscape(role), nil, &out)
}

func (c *Client) RotateJoinToken(ctx context.Context, role string) (*JoinToken, error) {
	var out JoinToken
	return &out, c.Do(ctx, "POST", "/v1/join-tokens/"+url.PathEscape(role)+"/rotate", nil, &out)
}

func (c *Client) Unlock(ctx context.Context, req UnlockRequest) (*UnlockResponse, error) {
	var out UnlockResponse
	return &out, c.Do(ctx, "POST", "/v1/unlock", req, &out)
}

func (c *Client) UnlockKey(ctx context.Context) (*UnlockKeyResponse, error) {
	var out UnlockKeyResponse
	return &out, c.Do(ctx, "GET", "/v1/unlock-key", nil, &out)
}

func (c *Client) RotateUnlockKey(ctx context.Context, req RotateUnlockKeyRequest) (*UnlockKeyResponse, error) {
	var out UnlockKeyResponse
	return &out, c.Do(ctx, "POST", "/v1/unlock-key/rotate", req, &out)
}

// --- node API ---

func (c *Client) ApplyForwarded(ctx context.Context, cmd []byte) error {
	return c.Do(ctx, "POST", "/internal/v1/apply", cmd, nil)
}

// ApplyBatchForwarded forwards commands in one request and returns each
// one's result: nil, or the *Error it would have had forwarded alone. The
// error is for the whole batch (then no result is known).
func (c *Client) ApplyBatchForwarded(ctx context.Context, cmds [][]byte) ([]error, error) {
	var out ApplyBatchResponse
	if err := c.Do(ctx, "POST", "/internal/v1/apply-batch", AppendApplyBatch(nil, cmds), &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(cmds) {
		return nil, fmt.Errorf("%w: %d results for %d commands", ErrUnreachable, len(out.Results), len(cmds))
	}
	errs := make([]error, len(cmds))
	for i, r := range out.Results {
		if r.Status != http.StatusOK {
			errs[i] = errorFrom(r.Status, r.Code, r.Error)
		}
	}
	return errs, nil
}

func (c *Client) ReadIndex(ctx context.Context) (*ReadIndex, error) {
	var out ReadIndex
	return &out, c.Do(ctx, "GET", "/internal/v1/read-index", nil, &out)
}

func (c *Client) JoinForwarded(ctx context.Context, req JoinGrantRequest) (*JoinGrant, error) {
	var out JoinGrant
	return &out, c.Do(ctx, "POST", "/internal/v1/join"+levelQuery(req.Level), req, &out)
}

func (c *Client) AddVoter(ctx context.Context, req AddVoterRequest) error {
	return c.Do(ctx, "POST", "/internal/v1/raft/add-voter", req, nil)
}

func (c *Client) SetRoleForwarded(ctx context.Context, id, role string) error {
	verb := "promote"
	if role == "worker" {
		verb = "demote"
	}
	return c.Do(ctx, "POST", "/internal/v1/nodes/"+url.PathEscape(id)+"/"+verb, nil, nil)
}

func (c *Client) RemoveNodeForwarded(ctx context.Context, id string, force bool) error {
	return c.Do(ctx, "DELETE", "/internal/v1/nodes/"+url.PathEscape(id)+"?force="+strconv.FormatBool(force), nil, nil)
}

func (c *Client) RotateJoinTokenForwarded(ctx context.Context, role string) (*JoinToken, error) {
	var out JoinToken
	return &out, c.Do(ctx, "POST", "/internal/v1/join-tokens/"+url.PathEscape(role)+"/rotate", nil, &out)
}

func (c *Client) Reachability(ctx context.Context) (*Reachability, error) {
	var out Reachability
	return &out, c.Do(ctx, "GET", "/internal/v1/reachability", nil, &out)
}

func (c *Client) Self(ctx context.Context, afterIndex uint64) (*SelfView, error) {
	var out SelfView
	return &out, c.Do(ctx, "GET", "/internal/v1/self?index="+strconv.FormatUint(afterIndex, 10), nil, &out)
}

func (c *Client) Renew(ctx context.Context, req RenewRequest) (*RenewResponse, error) {
	var out RenewResponse
	return &out, c.Do(ctx, "POST", "/internal/v1/renew", req, &out)
}

func (c *Client) LeaveNode(ctx context.Context, req LeaveNodeRequest) error {
	return c.Do(ctx, "POST", "/internal/v1/leave", req, nil)
}

func (c *Client) ClusterStatus(ctx context.Context) (*Status, error) {
	var out Status
	return &out, c.Do(ctx, "GET", "/internal/v1/status", nil, &out)
}

// --- join API ---

func (c *Client) Grant(ctx context.Context, req JoinGrantRequest) (*JoinGrant, error) {
	var out JoinGrant
	return &out, c.Do(ctx, "POST", "/join"+levelQuery(req.Level), req, &out)
}

// levelQuery carries a joiner's level.
func levelQuery(level int) string {
	if level <= 0 {
		return ""
	}
	return "?level=" + strconv.Itoa(level)
}

// Level asks a manager what its build can apply (LevelInfo).
func (c *Client) Level(ctx context.Context) (*LevelInfo, error) {
	var out LevelInfo
	return &out, c.Do(ctx, "GET", "/internal/v1/level", nil, &out)
}
