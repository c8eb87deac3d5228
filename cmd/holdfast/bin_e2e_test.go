package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/testutil"
)

// TestBinaryFormatsFiltersAndFollow drives the built binary, as a user's
// shell does, through a Go template format, each filter key, and a
// follow-only CA rotation that never starts one.
func TestBinaryFormatsFiltersAndFollow(t *testing.T) {
	bin := buildHoldfast(t)
	d := listingDaemon(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "ls", "--format", "{{.id}} {{.role}}"}, "m1aaaa manager\nm2bbbb manager\nw1cccc worker\n"},
		{[]string{"ca", "--format", "{{.digest}}"}, "sha256:abc\n"},
		{[]string{"node", "ls", "-q", "--filter", "role=manager", "--filter", "status=ready"}, "m1aaaa\n"},
		{[]string{"node", "ls", "-q", "--filter", "name=m2"}, "m2bbbb\n"},
		{[]string{"node", "ls", "-q", "--filter", "id=w1"}, "w1cccc\n"},
		{[]string{"secret", "ls", "-q", "--filter", "label=env=prod"}, "s1\n"},
		{[]string{"secret", "ls", "-q", "--filter", "name=db-", "--filter", "label=env"}, "s1\ns2\n"},
	} {
		r := binRun(t, bin, "", append(tt.args, "--socket", d.socket)...)
		if r.code != exitOK || r.stdout != tt.want {
			t.Errorf("holdfast %q: exit %d, stdout %q, stderr %q; want %q", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
	if r := binRun(t, bin, "", "node", "ls", "--filter", "colour=red", "--socket", d.socket); r.code != exitUsage {
		t.Errorf("an unknown filter key: exit %d, stderr %q; want %d", r.code, r.stderr, exitUsage)
	}
	rd, started := rotationDaemon(t, api.CARotation{State: api.CARotationNone})
	if r := binRun(t, bin, "", "ca", "--follow", "--socket", rd.socket); r.code != exitOK || r.stdout != "No CA rotation is in progress.\n" {
		t.Errorf("ca --follow with none in progress: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := started.Load(); n != 0 {
		t.Errorf("ca --follow started %d rotations", n)
	}
}

// TestBinaryRemovedWorker drives the built binary against a removed
// worker: status answers (exit 0) with state removed and how to join
// again, its JSON says removed, /v1/health is 503 removed, and another
// command fails with exit 1 and that advice.
func TestBinaryRemovedWorker(t *testing.T) {
	bin := buildHoldfast(t)
	msock, _ := startManager(t)
	wsock, _ := startManager(t)
	if r := binRun(t, bin, "", "init", "--socket", msock); r.code != exitOK {
		t.Fatalf("init: exit %d, stderr %q", r.code, r.stderr)
	}
	tok := binRun(t, bin, "", "join-token", "-q", "worker", "--socket", msock)
	addr := strings.TrimSpace(binRun(t, bin, "", "status", "--format", "{{.addr}}", "--socket", msock).stdout)
	if r := binRun(t, bin, "", "join", "--token", strings.TrimSpace(tok.stdout), addr, "--socket", wsock); r.code != exitOK {
		t.Fatalf("join: exit %d, stderr %q", r.code, r.stderr)
	}
	wid := strings.TrimSpace(binRun(t, bin, "", "status", "--format", "{{.node_id}}", "--socket", wsock).stdout)
	if r := binRun(t, bin, "", "node", "rm", wid, "--socket", msock); r.code != exitOK {
		t.Fatalf("node rm: exit %d, stderr %q", r.code, r.stderr)
	}
	testutil.Eventually(t, waitTimeout, func() (bool, string) {
		r := binRun(t, bin, "", "status", "--format", "{{.state}}", "--socket", wsock)
		return r.stdout == "removed\n", "the worker's state: " + r.stdout + r.stderr
	})
	r := binRun(t, bin, "", "status", "--socket", wsock)
	if r.code != exitOK || !strings.Contains(r.stdout, "was removed from the cluster") || !strings.Contains(r.stdout, "holdfast join --token TOKEN HOST:PORT") {
		t.Errorf("status: exit %d, stdout:\n%s\nwant exit 0, removed, and how to join again", r.code, r.stdout)
	}
	if code, state := unixHealth(t, wsock); code != http.StatusServiceUnavailable || state != "removed" {
		t.Errorf("health: %d %q; want 503 removed", code, state)
	}
	r = binRun(t, bin, "", "keys", "ls", "--socket", wsock)
	if r.code != exitError || !strings.Contains(r.stderr, "removed") {
		t.Errorf("keys ls on a removed worker: exit %d, stderr %q; want exit 1 saying it was removed", r.code, r.stderr)
	}
}
