package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// SnapshotRequest is POST /v1/snapshot. With Passphrase empty the backup is
// sealed under a key derived from the cluster's unlock key, which needs
// autolock on.
type SnapshotRequest struct {
	Passphrase string `json:"passphrase,omitempty"`
}

// String never shows the passphrase.
func (SnapshotRequest) String() string { return "snapshot request" }

// SnapshotStream is a sealed backup ready to be sent: its length, and the
// function that writes it.
type SnapshotStream struct {
	Size    int64
	WriteTo func(w io.Writer) error
}

// SnapshotBackend is the control API's backup route.
type SnapshotBackend interface {
	SaveSnapshot(ctx context.Context, req SnapshotRequest) (*SnapshotStream, error)
}

func snapshotRoutes(mux *http.ServeMux, b SnapshotBackend) {
	mux.HandleFunc("POST /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		var req SnapshotRequest
		if !decode(w, r, &req) {
			return
		}
		s, err := b.SaveSnapshot(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(s.Size, 10))
		w.WriteHeader(http.StatusOK)
		if err := s.WriteTo(w); err != nil {
			// The status is sent: cut the connection so the client
			// sees a short body, never a complete-looking one.
			panic(http.ErrAbortHandler)
		}
	})
}

// ErrShortSnapshot means the daemon's backup stream ended early.
var ErrShortSnapshot = errors.New("the daemon's backup stream ended early")

// SaveSnapshot asks the daemon for a sealed backup and copies it to w as it
// arrives. size, if not nil, is called with the backup's length first.
func (c *Client) SaveSnapshot(ctx context.Context, req SnapshotRequest, w io.Writer, size func(int64)) (int64, error) {
	resp, err := c.open(ctx, "POST", "/v1/snapshot", req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if size != nil {
		size(resp.ContentLength)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("%w after %d bytes: %v", ErrShortSnapshot, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("%w: %d of %d bytes", ErrShortSnapshot, n, resp.ContentLength)
	}
	return n, nil
}
