package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// result is what one run of holdfast did.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs holdfast with args and no environment.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := c.run(t.Context(), args)
	return result{code, stdout.String(), stderr.String()}
}

// checkErrorLine checks that stderr is one line starting "holdfast: " that
// contains want.
func checkErrorLine(t *testing.T, r result, want string) {
	t.Helper()
	if !strings.HasPrefix(r.stderr, "holdfast: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr = %q; want one line starting \"holdfast: \"", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr = %q; want it to contain %q", r.stderr, want)
	}
}

func TestExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing-here.sock")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // substring of the one error line; empty: stderr must be empty
	}{
		{name: "version", args: []string{"version"}, code: exitOK},
		{name: "help", args: []string{"help"}, code: exitOK},
		{name: "--help", args: []string{"--help"}, code: exitOK},
		{name: "-h", args: []string{"-h"}, code: exitOK},
		{name: "help for a command", args: []string{"help", "node", "rm"}, code: exitOK},
		{name: "command --help", args: []string{"node", "rm", "--help"}, code: exitOK},
		{name: "group --help", args: []string{"node", "--help"}, code: exitOK},
		{name: "global flag then help", args: []string{"--socket", missing, "status", "-h"}, code: exitOK},

		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: "unknown command 'frobnicate'"},
		{name: "unknown subcommand", args: []string{"node", "frob"}, code: exitUsage, stderr: "unknown command 'node frob'"},
		{name: "group without subcommand", args: []string{"node"}, code: exitUsage, stderr: "'node' needs a subcommand"},
		{name: "help for unknown command", args: []string{"help", "frob"}, code: exitUsage, stderr: "unknown command 'frob'"},
		{name: "ca key without cert", args: []string{"ca", "--rotate", "--ca-key", "k.pem"}, code: exitUsage, stderr: "--ca-cert and --ca-key go together"},
		{name: "ca detach without rotate", args: []string{"ca", "--detach"}, code: exitUsage, stderr: "go with --rotate"},
		{name: "ca positional", args: []string{"ca", "x"}, code: exitUsage, stderr: "holdfast: "},
		{name: "unlock-key shares without rotate", args: []string{"unlock-key", "--shares", "3", "--threshold", "2"}, code: exitUsage, stderr: "--shares and --threshold go with --rotate"},
		{name: "unlock-key threshold without rotate", args: []string{"unlock-key", "--threshold=2", "--socket", missing}, code: exitUsage, stderr: "go with --rotate"},
		{name: "unlock-key bad shares", args: []string{"unlock-key", "--rotate", "--shares", "many"}, code: exitUsage, stderr: `invalid value "many" for --shares`},
		{name: "unlock-key argument", args: []string{"unlock-key", "now"}, code: exitUsage, stderr: `unexpected argument "now"`},
		{name: "unlock key on the command line", args: []string{"unlock", "HFKEY-1-secret"}, code: exitUsage, stderr: "unlock takes no arguments: give the key on stdin or with --key-file FILE"},
		{name: "unlock empty key file flag", args: []string{"unlock", "--key-file="}, code: exitUsage, stderr: "--key-file needs a file"},
		{name: "unlock nothing on stdin", args: []string{"unlock", "--socket", missing}, code: exitError, stderr: "no unlock key on stdin"},
		{name: "unlock missing key file", args: []string{"unlock", "--socket", missing, "--key-file", missing + ".key"}, code: exitError, stderr: "cannot read the --key-file " + missing + ".key: no such file or directory"},
		{name: "daemon empty unlock key command", args: []string{"daemon", "--unlock-key-command"}, code: exitUsage, stderr: "flag --unlock-key-command needs a value"},
		{name: "unknown flag", args: []string{"status", "--frob"}, code: exitUsage, stderr: "unknown flag --frob; run 'holdfast status --help' for usage"},
		{name: "command flag before command", args: []string{"--format", "json", "status"}, code: exitUsage, stderr: "unknown flag --format before the command"},
		{name: "global flag without value", args: []string{"status", "--socket"}, code: exitUsage, stderr: "flag --socket needs a value"},
		{name: "empty socket", args: []string{"status", "--socket="}, code: exitUsage, stderr: "--socket needs a path"},
		{name: "bad format", args: []string{"status", "--format", "yaml"}, code: exitUsage, stderr: `invalid value "yaml" for --format`},
		{name: "too many args", args: []string{"node", "rm", "a", "b"}, code: exitUsage, stderr: "too many arguments"},
		{name: "missing arg", args: []string{"node", "inspect"}, code: exitUsage, stderr: "missing ID|self"},
		{name: "unexpected arg", args: []string{"version", "now"}, code: exitUsage, stderr: `unexpected argument "now"`},
		{name: "update without flags", args: []string{"update", "--socket", missing}, code: exitUsage, stderr: "nothing to update"},
		{name: "update bad duration", args: []string{"update", "--cert-expiry", "3 months"}, code: exitUsage, stderr: "want a duration"},
		{name: "update autolock with separate value", args: []string{"update", "--autolock", "false"}, code: exitUsage, stderr: `unexpected argument "false"`},
		{name: "init bad duration", args: []string{"init", "--key-rotation=soon"}, code: exitUsage, stderr: "--key-rotation"},
		{name: "init ca cert without key", args: []string{"init", "--ca-cert", "c.pem"}, code: exitUsage, stderr: "--ca-cert and --ca-key go together"},
		{name: "join-token bad role", args: []string{"join-token", "admin"}, code: exitUsage, stderr: `unknown role "admin"`},
		{name: "join without token", args: []string{"join", "10.0.0.1:4242"}, code: exitUsage, stderr: "missing --token"},
		{name: "join bad address", args: []string{"join", "--token", "T", "10.0.0.1"}, code: exitUsage, stderr: "want HOST:PORT"},
		{name: "dev too many managers", args: []string{"dev", "--managers", "8"}, code: exitUsage, stderr: "--managers must be between 1 and 7"},
		{name: "dev bad number", args: []string{"dev", "--managers", "three"}, code: exitUsage, stderr: `invalid value "three" for --managers`},
		{name: "daemon bad log level", args: []string{"daemon", "--log-level", "loud"}, code: exitUsage, stderr: "want one of debug, info, warn, error"},
		{name: "daemon bad listen address", args: []string{"daemon", "--listen-addr", "4242"}, code: exitUsage, stderr: `bad --listen-addr "4242"`},
		{name: "daemon bad advertise address", args: []string{"daemon", "--data-dir", t.TempDir(), "--advertise-addr", "0.0.0.0:4242"}, code: exitUsage, stderr: "needs a host other nodes can reach"},

		{name: "unreachable daemon", args: []string{"status", "--socket", missing}, code: exitError, stderr: "cannot reach the holdfast daemon at " + missing},
		{name: "unreachable daemon says what to do", args: []string{"--socket", missing, "node", "ls"}, code: exitError, stderr: "Start it with 'holdfast daemon'"},
		{name: "unreadable CA file", args: []string{"init", "--socket", missing, "--ca-cert", missing + ".crt", "--ca-key", missing + ".key"}, code: exitError, stderr: "cannot read the --ca-cert file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d; want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			if tt.stderr == "" {
				if r.stderr != "" {
					t.Errorf("stderr = %q; want nothing", r.stderr)
				}
				return
			}
			checkErrorLine(t, r, tt.stderr)
		})
	}
}

func TestNoArgsPrintsUsage(t *testing.T) {
	r := runCLI(t)
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "Usage: holdfast") || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and the usage on stderr", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "help")
	for _, want := range []string{"Usage: holdfast", "node rm", "join-token", "--socket PATH", "\n  unlock  ", "\n  unlock-key  ", "\nData-plane keys:\n  keys ls  "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help does not mention %q:\n%s", want, r.stdout)
		}
	}
	cluster := r.stdout[strings.Index(r.stdout, "\nCluster:\n"):strings.Index(r.stdout, "\nNodes:\n")]
	for _, want := range []string{"unlock ", "unlock-key "} {
		if !strings.Contains(cluster, "\n  "+want) {
			t.Errorf("help does not list %q under Cluster:\n%s", want, cluster)
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"two\nlines", "two; lines"},
		{"crlf\r\nhere\n", "crlf; here"},
		{"holdfast: already prefixed", "already prefixed"},
		{"a\n\n  b  \n", "a; b"},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// fakeDaemon serves handler on a unix socket and records request bodies.
type fakeDaemon struct {
	socket string
	mu     sync.Mutex
	bodies map[string]string // "METHOD /path" → body
}

func startFakeDaemon(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{socket: filepath.Join(t.TempDir(), "fake.sock"), bodies: map[string]string{}}
	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.bodies[r.Method+" "+r.URL.Path] = string(b)
		d.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b)) // for the handler to read again
		handler(w, r)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return d
}

func (d *fakeDaemon) body(key string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bodies[key]
}

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestAPIErrorsPassThrough(t *testing.T) {
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/init":
			answer(w, http.StatusNotImplemented, map[string]string{"error": "autolock is not available in this build yet"})
		case "/v1/nodes":
			answer(w, http.StatusServiceUnavailable, map[string]string{"error": "no leader\nthe managers lost quorum"})
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"init", "--autolock"}, "holdfast: autolock is not available in this build yet\n"},
		{[]string{"node", "ls"}, "holdfast: no leader; the managers lost quorum\n"},
		{[]string{"node", "promote", "x"}, "holdfast: POST /v1/nodes/x/promote: 418 I'm a teapot\n"},
	}
	for _, tt := range tests {
		r := runCLI(t, append(tt.args, "--socket", d.socket)...)
		if r.code != exitError || r.stderr != tt.want || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 and stderr %q", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
}

func TestUpdateSendsOnlyGivenFields(t *testing.T) {
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, map[string]string{})
	})
	tests := []struct {
		args []string
		body string
	}{
		{[]string{"--cert-expiry", "2160h"}, `{"cert_expiry":"2160h"}`},
		{[]string{"--key-rotation=90m", "--autolock=false"}, `{"autolock":false,"key_rotation":"90m"}`},
		{[]string{"--autolock"}, `{"autolock":true}`},
	}
	for _, tt := range tests {
		r := runCLI(t, append([]string{"update", "--socket", d.socket}, tt.args...)...)
		want := "Cluster settings updated.\n"
		if slices.Contains(tt.args, "--autolock=false") {
			want += "Autolock is off: a restarted manager no longer needs the unlock key, and\n" +
				"the managers' keys are now stored unwrapped on disk (mode 0600), readable by anyone who can read the data dir.\n"
		}
		if r.code != exitOK || r.stdout != want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", tt.args, r.code, r.stdout, r.stderr)
		}
		if got := strings.TrimSpace(d.body("PATCH /v1/cluster")); got != tt.body {
			t.Errorf("%q: sent %s; want %s", tt.args, got, tt.body)
		}
	}
}

func TestInitSendsCAFiles(t *testing.T) {
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, map[string]string{"cluster_id": "C1", "node_id": "N1", "addr": "10.0.0.1:4242",
			"worker_token": "WT", "manager_token": "MT", "unlock_key": "HFKEY-x"})
	})
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "ca.pem"), "CERT")
	writeTestFile(t, filepath.Join(dir, "ca.key"), "KEY")
	r := runCLI(t, "init", "--socket", d.socket, "--ca-cert", filepath.Join(dir, "ca.pem"), "--ca-key", filepath.Join(dir, "ca.key"), "--cert-expiry", "720h")
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	want := `{"cert_expiry":"720h","ca_cert":"CERT","ca_key":"KEY"}`
	if got := strings.TrimSpace(d.body("POST /v1/init")); got != want {
		t.Errorf("sent %s; want %s", got, want)
	}
	if !strings.Contains(r.stdout, "\nHFKEY-x\n") {
		t.Errorf("stdout does not show the unlock key on a line of its own:\n%s", r.stdout)
	}
	r = runCLI(t, "init", "-q", "--socket", d.socket)
	if r.code != exitOK || r.stdout != "C1\n" {
		t.Errorf("init -q: exit %d, stdout %q; want C1", r.code, r.stdout)
	}
}
