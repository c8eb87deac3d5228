package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/holdfast/holdfast/api"
)

// TestProgressCutToNarrowTerminal: on a 40-column terminal every
// progress line of 'ca --rotate' fits in it, cut with "…".
func TestProgressCutToNarrowTerminal(t *testing.T) {
	var waiting []api.CAWaitingFor
	for _, id := range []string{"node-aaaaaaaaaaaa", "node-bbbbbbbbbbbb", "node-cccccccccccc"} {
		waiting = append(waiting, api.CAWaitingFor{ID: id, Role: "worker", Addr: "10.0.0.9:4242", Status: api.NodeDown})
	}
	d, _ := rotationDaemon(t,
		api.CARotation{ID: "r1", State: api.CARotationRotating, NewDigest: "d1", Nodes: 4, Converted: 1, Waiting: waiting},
		api.CARotation{ID: "r1", State: api.CARotationDone, NewDigest: "d1", Nodes: 4, Converted: 4})
	master, tty := openPTY(t)
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 40}); err != nil {
		t.Skipf("set the terminal size: %v", err)
	}
	stdout := newSyncBuffer()
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: tty, getenv: func(string) string { return "" }}
	if code := c.run(t.Context(), []string{"ca", "--rotate", "--socket", d.socket}); code != exitOK {
		t.Fatalf("ca --rotate: exit %d", code)
	}
	got := terminalOutput(t, tty, master)
	lines := 0
	for _, seg := range strings.Split(got, "\r\033[K") {
		seg = strings.TrimSuffix(strings.TrimSuffix(seg, "\r\n"), "\n")
		if seg == "" || strings.HasPrefix(seg, terminalMarker) {
			continue
		}
		lines++
		if n := utf8.RuneCountInString(seg); n >= 40 || !strings.HasSuffix(seg, "…") {
			t.Errorf("progress line %q is %d columns on a 40-column terminal; want it cut to 39 with …", seg, n)
		}
	}
	if lines == 0 {
		t.Errorf("no progress on the terminal: %q", got)
	}
}

// TestSecretCreateHiddenOnTerminal: 'secret create NAME -' with a
// terminal on stdin prompts, reads one line without echo, and stores
// exactly what was typed (no newline); the terminal never shows it.
func TestSecretCreateHiddenOnTerminal(t *testing.T) {
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, api.SecretID{ID: "S1"})
	})
	master, tty := openPTY(t)
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	c := &cli{stdin: tty, stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }}
	exited := make(chan int, 1)
	go func() { exited <- c.run(t.Context(), []string{"secret", "create", "pw", "-", "--socket", d.socket}) }()

	stderr.waitFor(t, "Secret data", exited)
	waitUntil(t, "secret create to switch echo off", func() bool { return !echoOn(t, tty) })
	if _, err := master.Write([]byte("s3cret-typed\n\x04")); err != nil {
		t.Fatal(err)
	}
	if code := <-exited; code != exitOK || stdout.String() != "S1\n" {
		t.Fatalf("secret create on a terminal: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	var req struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal([]byte(d.body("POST /v1/secrets")), &req); err != nil {
		t.Fatal(err)
	}
	if data, _ := base64.StdEncoding.DecodeString(req.Data); string(data) != "s3cret-typed" {
		t.Errorf("stored %q; want what was typed, without the newline", data)
	}
	if !echoOn(t, tty) {
		t.Error("secret create left the terminal without echo")
	}
	if shown := terminalOutput(t, tty, master); strings.Contains(shown, "s3cret") {
		t.Errorf("the terminal echoed the secret: %q", shown)
	}
}
