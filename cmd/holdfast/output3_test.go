package main

import (
	"bytes"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/holdfast/holdfast/api"
)

// TestSecretLsShowsGrantCount: the GRANTS column counts the nodes; the
// IDs are for secret inspect.
func TestSecretLsShowsGrantCount(t *testing.T) {
	d := listingDaemon(t)
	r := runCLI(t, "secret", "ls", "--socket", d.socket)
	if r.code != exitOK {
		t.Fatalf("secret ls: exit %d, %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	header := strings.Fields(lines[0])
	col := -1
	for i, h := range header {
		if h == "GRANTS" {
			col = i + 1 // "SIZE" is two fields in the rows ("6 B")
		}
	}
	want := map[string]string{"db-password": "3", "db-user": "-", "api-token": "1"}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if col < 0 || col >= len(f) || f[col] != want[f[0]] {
			t.Errorf("secret ls row %q: want %s in the GRANTS column", line, want[f[0]])
		}
	}
	if strings.Contains(r.stdout, "m1aaaa") {
		t.Errorf("secret ls lists node IDs:\n%s", r.stdout)
	}
	r = runCLI(t, "secret", "inspect", "db-password", "--socket", d.socket)
	for _, id := range []string{"m1aaaa", "m2bbbb", "w1cccc"} {
		if !strings.Contains(r.stdout, id) {
			t.Errorf("secret inspect does not list grant %s:\n%s", id, r.stdout)
		}
	}
}

// TestByteProgressOffTerminal: piped, a backup's progress is one line
// naming the step, not a line per tenth.
func TestByteProgressOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := &byteProgress{p: newProgress(&buf), what: "saving backup", total: 4096}
	for range 8 {
		b.Write(make([]byte, 512))
	}
	if buf.String() != "saving backup\n" {
		t.Errorf("progress off a terminal = %q; want one line", buf.String())
	}
}

func TestCutToWidth(t *testing.T) {
	tests := []struct {
		msg   string
		width int
		want  string
	}{
		{"short", 40, "short"},
		{"exactly nine", 13, "exactly nine"},
		{"one too long", 12, "one too lo…"},
		{"waiting for: n1 — unreachable", 20, "waiting for: n1 — …"},
		{"unknown width", 0, "unknown width"},
	}
	for _, tt := range tests {
		if got := cutToWidth(tt.msg, tt.width); got != tt.want {
			t.Errorf("cutToWidth(%q, %d) = %q; want %q", tt.msg, tt.width, got, tt.want)
		}
	}
}

// rotationDaemon serves GET /v1/ca/rotation from states (the last one
// repeats) and counts the rotations started.
func rotationDaemon(t *testing.T, states ...api.CARotation) (*fakeDaemon, *atomic.Int32) {
	var started, polls atomic.Int32
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/ca/rotate":
			started.Add(1)
			answer(w, http.StatusOK, states[0])
		case "GET /v1/ca/rotation":
			i := int(polls.Add(1)) - 1
			answer(w, http.StatusOK, states[min(i, len(states)-1)])
		case "GET /v1/ca":
			answer(w, http.StatusOK, api.CAInfo{RootPEM: "PEM\n", Digest: "d"})
		default:
			answer(w, http.StatusNotFound, map[string]string{"error": "no route"})
		}
	})
	return d, &started
}

// TestCAFollowNeverStartsARotation: 'ca --follow' follows the rotation in
// progress to its end; with none in progress it says so and exits 0; it
// never starts one.
func TestCAFollowNeverStartsARotation(t *testing.T) {
	rotating := api.CARotation{ID: "r1", State: api.CARotationRotating, NewDigest: "d1", Nodes: 3, Converted: 1}
	done := api.CARotation{ID: "r1", State: api.CARotationDone, NewDigest: "d1", Nodes: 3, Converted: 3}

	d, started := rotationDaemon(t, done)
	r := runCLI(t, "ca", "--follow", "--socket", d.socket)
	if r.code != exitOK || !strings.Contains(r.stdout, "No CA rotation is in progress; the last one, r1, is done") {
		t.Errorf("ca --follow after a finished rotation: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	d2, started2 := rotationDaemon(t, api.CARotation{State: api.CARotationNone})
	r = runCLI(t, "ca", "--follow", "--socket", d2.socket)
	if r.code != exitOK || r.stdout != "No CA rotation is in progress.\n" {
		t.Errorf("ca --follow with no rotation ever: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	d3, started3 := rotationDaemon(t, rotating, rotating, done)
	r = runCLI(t, "ca", "--follow", "--socket", d3.socket)
	if r.code != exitOK || !strings.Contains(r.stdout, "CA rotation r1 done: all 3 nodes") {
		t.Errorf("ca --follow of a rotation in progress: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for i, n := range []*atomic.Int32{started, started2, started3} {
		if n.Load() != 0 {
			t.Errorf("case %d: ca --follow started %d rotations", i, n.Load())
		}
	}
	if r := runCLI(t, "ca", "--follow", "--rotate", "--socket", d.socket); r.code != exitUsage {
		t.Errorf("ca --follow --rotate: exit %d; want %d", r.code, exitUsage)
	}
	// The hint after --detach names the follow-only form.
	r = runCLI(t, "ca", "--rotate", "--detach", "--socket", d.socket)
	if r.code != exitOK || !strings.Contains(r.stdout, "follow it with 'holdfast ca --follow'") {
		t.Errorf("ca --rotate --detach: exit %d, stdout %q", r.code, r.stdout)
	}
}
