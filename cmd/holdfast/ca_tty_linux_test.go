package main

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/holdfast/holdfast/api"
)

// TestCARotateProgressOnTerminal: on a terminal, 'ca --rotate' shows one
// progress line with a bar, rewritten in place, naming the node it waits
// for, and clears it when done.
func TestCARotateProgressOnTerminal(t *testing.T) {
	waiting := []api.CAWaitingFor{{ID: "n2", Role: "worker", Addr: "10.0.0.2:4242", Status: api.NodeDown}}
	var polls atomic.Int32
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/ca/rotate":
			answer(w, http.StatusOK, api.CARotation{ID: "r1", State: api.CARotationRotating, NewDigest: "d1", Nodes: 4, Converted: 1, Waiting: waiting})
		case "GET /v1/ca/rotation":
			if polls.Add(1) < 3 {
				answer(w, http.StatusOK, api.CARotation{ID: "r1", State: api.CARotationRotating, NewDigest: "d1", Nodes: 4, Converted: 3, Waiting: waiting})
				return
			}
			answer(w, http.StatusOK, api.CARotation{ID: "r1", State: api.CARotationDone, NewDigest: "d1", Nodes: 4, Converted: 4, Waiting: []api.CAWaitingFor{}})
		default:
			answer(w, http.StatusNotFound, map[string]string{"error": "no route"})
		}
	})
	master, tty := openPTY(t)
	stdout := newSyncBuffer()
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: tty, getenv: func(string) string { return "" }}
	if code := c.run(t.Context(), []string{"ca", "--rotate", "--socket", d.socket}); code != exitOK {
		t.Fatalf("ca --rotate: exit %d", code)
	}
	if !strings.Contains(stdout.String(), "CA rotation r1 done") {
		t.Errorf("stdout %q", stdout.String())
	}
	got := terminalOutput(t, tty, master)
	for _, want := range []string{
		"\r\033[K[#####...............] 1/4 nodes on the new root; waiting for: n2 (10.0.0.2:4242) — unreachable",
		"\r\033[K[###############.....] 3/4 nodes on the new root; waiting for: n2 (10.0.0.2:4242) — unreachable",
		"\r\033[K" + terminalMarker,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the terminal showed %q; want it to contain %q", got, want)
		}
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("the terminal showed %d lines; want the progress on one line, rewritten: %q", strings.Count(got, "\n"), got)
	}
}
