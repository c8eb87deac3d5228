package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/testutil"
)

// unixHealth GETs /v1/health on the control socket and returns the HTTP
// status and the body's state, as curl --unix-socket would see them.
func unixHealth(t *testing.T, socket string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://h/v1/health")
	if err != nil {
		t.Fatalf("GET /v1/health: %v", err)
	}
	defer resp.Body.Close()
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("health body: %v", err)
	}
	return resp.StatusCode, h.Status
}

// TestRemovedWorkerStatus: after 'node rm', the worker's own CLI says it
// was removed and what to do — status (exit 0, as status of a locked
// node: it answers), status --format json, /v1/health 503 "removed" —
// and its other commands fail (exit 1) with that advice, not with "not
// part of a cluster".
func TestRemovedWorkerStatus(t *testing.T) {
	msock, _ := startManager(t)
	wsock, _ := startManager(t)
	if r := runCLI(t, "init", "--socket", msock); r.code != exitOK {
		t.Fatalf("init: exit %d, stderr %q", r.code, r.stderr)
	}
	tok := runCLI(t, "join-token", "-q", "worker", "--socket", msock)
	if tok.code != exitOK {
		t.Fatalf("join-token: exit %d, stderr %q", tok.code, tok.stderr)
	}
	addr, _ := statusJSON(t, msock)["addr"].(string)
	if r := runCLI(t, "join", "--token", strings.TrimSpace(tok.stdout), addr, "--socket", wsock); r.code != exitOK {
		t.Fatalf("join: exit %d, stderr %q", r.code, r.stderr)
	}
	wid, _ := statusJSON(t, wsock)["node_id"].(string)
	if code, state := unixHealth(t, wsock); code != http.StatusOK || state != "ready" {
		t.Fatalf("health of the joined worker: %d %q; want 200 ready", code, state)
	}
	if r := runCLI(t, "node", "rm", wid, "--socket", msock); r.code != exitOK {
		t.Fatalf("node rm: exit %d, stderr %q", r.code, r.stderr)
	}
	testutil.Eventually(t, waitTimeout, func() (bool, string) {
		st := statusJSON(t, wsock)
		return st["state"] == "removed", "the worker to say removed; status " + jsonText(st)
	})
	st := statusJSON(t, wsock)
	if st["node_id"] != wid || st["role"] != "worker" {
		t.Errorf("status --format json = %s; want worker %s", jsonText(st), wid)
	}
	r := runCLI(t, "status", "--socket", wsock)
	if r.code != exitOK || !strings.Contains(r.stdout, "removed") || !strings.Contains(r.stdout, "was removed from the cluster") ||
		!strings.Contains(r.stdout, "holdfast join-token worker") || !strings.Contains(r.stdout, "holdfast join --token TOKEN HOST:PORT") {
		t.Errorf("status: exit %d, stdout:\n%s\nwant exit 0, state removed, and how to join again", r.code, r.stdout)
	}
	if strings.Contains(r.stdout, "quorum") {
		t.Errorf("status of a removed worker blames quorum:\n%s", r.stdout)
	}
	if code, state := unixHealth(t, wsock); code != http.StatusServiceUnavailable || state != "removed" {
		t.Errorf("health: %d %q; want 503 removed", code, state)
	}
	r = runCLI(t, "keys", "ls", "--socket", wsock)
	if r.code != exitError || !strings.HasPrefix(r.stderr, "holdfast: this node was removed from the cluster") || !strings.Contains(r.stderr, "holdfast join --token") {
		t.Errorf("keys ls on the removed worker: exit %d, stderr %q; want exit 1 saying it was removed and how to join", r.code, r.stderr)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
