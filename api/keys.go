package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// KeyInfo is one data-plane key as `keys ls` shows it: never its material.
type KeyInfo struct {
	Subsystem string    `json:"subsystem"`
	KeyID     string    `json:"key_id"`
	Lamport   uint64    `json:"lamport"`
	CreatedAt time.Time `json:"created_at"`
	Primary   bool      `json:"primary"`
}

// Key is one data-plane key with its material (base64 in JSON). Only the
// 0600 control socket and mutual-TLS node API ever carry it.
type Key struct {
	KeyID     string    `json:"key_id"`
	Lamport   uint64    `json:"lamport"`
	CreatedAt time.Time `json:"created_at"`
	Primary   bool      `json:"primary"`
	Key       []byte    `json:"key"`
}

// String never shows the material.
func (k Key) String() string { return fmt.Sprintf("key %s (Lamport %d)", k.KeyID, k.Lamport) }

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }

// Keyring is one subsystem's keys, oldest first, as GET
// /v1/keys/{subsystem} serves it to a local data plane.
type Keyring struct {
	Subsystem string `json:"subsystem"`
	Keys      []Key  `json:"keys"`
}

// GossipAddrRequest is POST /internal/v1/self/gossip-addr: where the
// calling node's memberlist listens.
type GossipAddrRequest struct {
	Addr string `json:"addr"`
}

// SetGossipAddr records the calling node's gossip address (node API).
func (c *Client) SetGossipAddr(ctx context.Context, req GossipAddrRequest) error {
	return c.Do(ctx, "POST", "/internal/v1/self/gossip-addr", req, nil)
}

// KeysBackend is the control API's data-plane key routes.
type KeysBackend interface {
	// Keys lists the keys this node holds, metadata only.
	Keys(ctx context.Context) ([]KeyInfo, error)
	// WatchKeyring calls send with the subsystem's current keyring, and
	// with watch again with every new one until ctx ends or send fails.
	WatchKeyring(ctx context.Context, subsystem string, watch bool, send func(*Keyring) error) error
}

func keyRoutes(mux *http.ServeMux, b KeysBackend) {
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		reply(w, res(b.Keys(r.Context())))
	})
	mux.HandleFunc("GET /v1/keys/{subsystem}", func(w http.ResponseWriter, r *http.Request) {
		watch, err := boolQuery(r, "watch")
		if err != nil {
			writeError(w, err)
			return
		}
		started := false
		enc := json.NewEncoder(w)
		err = b.WatchKeyring(r.Context(), r.PathValue("subsystem"), watch, func(k *Keyring) error {
			if !started {
				started = true
				if watch {
					// One JSON document per line, flushed as it comes.
					w.Header().Set("Content-Type", "application/x-ndjson")
				} else {
					w.Header().Set("Content-Type", "application/json")
				}
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusOK)
			}
			if err := enc.Encode(k); err != nil {
				return err
			}
			return http.NewResponseController(w).Flush()
		})
		if err != nil && !started {
			writeError(w, err)
		}
	})
}

// Keys lists the data-plane keys the node holds, without material.
func (c *Client) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	return out, c.Do(ctx, "GET", "/v1/keys", nil, &out)
}

// Keyring returns a subsystem's current keyring, with material.
func (c *Client) Keyring(ctx context.Context, subsystem string) (*Keyring, error) {
	var out Keyring
	return &out, c.Do(ctx, "GET", "/v1/keys/"+url.PathEscape(subsystem), nil, &out)
}

// WatchKeyring follows GET /v1/keys/{subsystem}?watch=1, calling fn with
// each keyring as it arrives, until ctx ends, the stream ends, or fn
// returns an error (which it returns).
func (c *Client) WatchKeyring(ctx context.Context, subsystem string, fn func(*Keyring) error) error {
	resp, err := c.open(ctx, "GET", "/v1/keys/"+url.PathEscape(subsystem)+"?watch=1", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var k Keyring
		if err := json.Unmarshal(sc.Bytes(), &k); err != nil {
			return fmt.Errorf("decode keyring: %w", err)
		}
		if err := fn(&k); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return fmt.Errorf("%w: the keyring stream ended", ErrUnreachable)
}
