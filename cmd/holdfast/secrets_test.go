package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/testutil"
	"github.com/holdfast/holdfast/secrets"
)

// runCLIInput runs holdfast with args, stdin as its standard input, and no
// environment.
func runCLIInput(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := c.run(t.Context(), args)
	return result{code, stdout.String(), stderr.String()}
}

// waitUntil polls cond until it holds, failing the test after waitTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, waitTimeout, testutil.Waiting(what, cond))
}

// secretFile reports the mode and content of a delivered secret file; ok
// is false when there is none.
func secretFile(t *testing.T, path string) (mode fs.FileMode, data []byte, ok bool) {
	t.Helper()
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), data, true
}

// waitForSecretFile waits until path holds exactly want, then checks that
// it is a regular file of mode 0400.
func waitForSecretFile(t *testing.T, path string, want []byte) {
	t.Helper()
	waitUntil(t, path+" to be written", func() bool {
		_, data, ok := secretFile(t, path)
		return ok && bytes.Equal(data, want)
	})
	if mode, _, _ := secretFile(t, path); mode != secrets.FileMode {
		t.Errorf("%s has mode %v; want %v", path, mode, secrets.FileMode)
	}
}

func waitForNoFile(t *testing.T, path string) {
	t.Helper()
	waitUntil(t, path+" to be removed", func() bool {
		_, err := os.Lstat(path)
		return errors.Is(err, fs.ErrNotExist)
	})
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// leakChecker runs secret commands against one daemon and fails the test
// if any output shows secret data, raw or base64.
type leakChecker struct {
	t        *testing.T
	socket   string
	canaries []string
}

func (l *leakChecker) add(data []byte) {
	l.canaries = append(l.canaries, string(data), base64.StdEncoding.EncodeToString(data))
}

func (l *leakChecker) run(stdin string, args ...string) result {
	l.t.Helper()
	r := runCLIInput(l.t, stdin, append(args, "--socket", l.socket)...)
	for _, c := range l.canaries {
		if strings.Contains(r.stdout, c) || strings.Contains(r.stderr, c) {
			l.t.Errorf("%q printed secret data %q:\nstdout %q\nstderr %q", args, c, r.stdout, r.stderr)
		}
	}
	return r
}

// ok runs a command that must succeed.
func (l *leakChecker) ok(stdin string, args ...string) result {
	l.t.Helper()
	r := l.run(stdin, args...)
	if r.code != exitOK || r.stderr != "" {
		l.t.Fatalf("%q: exit %d, stdout %q, stderr %q; want success", args, r.code, r.stdout, r.stderr)
	}
	return r
}

func (l *leakChecker) inspectJSON(ref string) map[string]any {
	l.t.Helper()
	r := l.ok("", "secret", "inspect", ref, "--format", "json")
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		l.t.Fatalf("secret inspect --format json: %v\n%s", err, r.stdout)
	}
	return m
}

func TestSecretsEndToEnd(t *testing.T) {
	socket, secretsDir := startManager(t)
	if r := runCLI(t, "init", "-q", "--socket", socket); r.code != exitOK {
		t.Fatalf("init: exit %d, stderr %q", r.code, r.stderr)
	}
	nodeID, _ := statusJSON(t, socket)["node_id"].(string)

	// Canaries: secret data that must never show in any output.
	dbData := []byte("CANARY-db-4f1c9a7e2b-never-print\nsecond line\n")
	apiData := []byte("CANARY-api-8d2e6b0c5f-never-print")
	birthData := []byte("CANARY-birth-1a3c5e7f9b-never-print")
	l := &leakChecker{t: t, socket: socket}
	l.add(dbData)
	l.add(apiData)
	l.add(birthData)

	dir := t.TempDir()
	dbFile := filepath.Join(dir, "db.txt")
	if err := os.WriteFile(dbFile, dbData, 0o600); err != nil {
		t.Fatal(err)
	}

	// create from a file and from stdin
	r := l.ok("", "secret", "create", "db.password", dbFile, "--label", "env=prod", "--label", "team=core")
	dbID := strings.TrimSuffix(r.stdout, "\n")
	if dbID == "" || strings.ContainsAny(dbID, " \n\t") {
		t.Fatalf("secret create printed %q; want just an ID", r.stdout)
	}
	r = l.ok(string(apiData), "secret", "create", "-q", "api.key", "-")
	apiID := strings.TrimSuffix(r.stdout, "\n")
	if apiID == "" || strings.ContainsAny(apiID, " \n\t") || apiID == dbID {
		t.Fatalf("secret create -q printed %q; want just a new ID", r.stdout)
	}

	// mistakes
	r = l.run("", "secret", "create", "db.password", dbFile)
	if r.code != exitError || r.stdout != "" {
		t.Errorf("create with a taken name: exit %d, stdout %q; want 1", r.code, r.stdout)
	}
	checkErrorLine(t, r, `secret name "db.password" is already in use`)
	r = l.run("", "secret", "create", "other", dbFile, "--label", "novalue")
	if r.code != exitUsage {
		t.Errorf("create --label novalue: exit %d; want 2", r.code)
	}
	checkErrorLine(t, r, `invalid value "novalue" for --label: want KEY=VALUE`)
	r = l.run("", "secret", "update", "db.password", "--label", "=x")
	if r.code != exitUsage {
		t.Errorf("update --label =x: exit %d; want 2", r.code)
	}
	checkErrorLine(t, r, "non-empty KEY")
	r = l.run("", "secret", "create", "other", dir)
	if r.code != exitError {
		t.Errorf("create from a directory: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "is a directory")
	r = l.run("", "secret", "create", "empty", "-")
	if r.code != exitError {
		t.Errorf("create from empty stdin: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "empty")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	r = l.run("", "secret", "create", "big", big)
	if r.code != exitError {
		t.Errorf("create from a 2 MiB file: exit %d; want 1", r.code)
	}
	// The CLI sends at most 500 KiB + 1 bytes, so the limit the server
	// names is the secret's, not the request body's.
	checkErrorLine(t, r, "500 KiB")

	// ls, as a table, JSON and IDs
	r = l.ok("", "secret", "ls")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "NAME ID SIZE DIGEST LABELS GRANTS CREATED" {
		t.Fatalf("secret ls printed:\n%s", r.stdout)
	}
	var dbRow string
	for _, line := range lines[1:] {
		if strings.HasPrefix(line, "db.password ") {
			dbRow = line
		}
	}
	for _, want := range []string{dbID, sha256Hex(dbData)[:12], "env=prod,team=core", fmt.Sprintf("%d B", len(dbData))} {
		if !strings.Contains(dbRow, want) {
			t.Errorf("secret ls row %q does not contain %q", dbRow, want)
		}
	}
	if strings.Contains(r.stdout, sha256Hex(dbData)[:13]) {
		t.Errorf("secret ls shows more than 12 digits of the digest:\n%s", r.stdout)
	}

	r = l.ok("", "secret", "ls", "--format", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("secret ls --format json: %v\n%s", err, r.stdout)
	}
	if len(list) != 2 {
		t.Fatalf("secret ls --format json lists %d secrets; want 2:\n%s", len(list), r.stdout)
	}
	for _, s := range list {
		checkKeys(t, "secret", s, "id", "name", "labels", "digest", "size", "created_at", "grants")
		if _, ok := s["data"]; ok {
			t.Errorf("secret ls --format json has a data field: %v", s)
		}
		if s["name"] == "db.password" {
			if s["id"] != dbID || s["digest"] != "sha256:"+sha256Hex(dbData) || s["size"] != float64(len(dbData)) {
				t.Errorf("db.password = %v; want ID %s, digest and size of its data", s, dbID)
			}
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(s["created_at"])); err != nil {
				t.Errorf("created_at %v is not RFC 3339", s["created_at"])
			}
		}
	}

	r = l.ok("", "secret", "ls", "-q")
	ids := strings.Fields(r.stdout)
	slices.Sort(ids)
	want := []string{dbID, apiID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("secret ls -q = %q; want the IDs %q", r.stdout, want)
	}

	// inspect, as text (by name) and JSON (by ID)
	r = l.ok("", "secret", "inspect", "db.password")
	for _, want := range []string{dbID, "sha256:" + sha256Hex(dbData), "env=prod", "team=core", fmt.Sprintf("(%d bytes)", len(dbData))} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("secret inspect does not show %q:\n%s", want, r.stdout)
		}
	}
	m := l.inspectJSON(apiID)
	checkKeys(t, "secret inspect", m, "id", "name", "labels", "digest", "size", "created_at", "updated_at", "grants")
	if m["name"] != "api.key" || m["size"] != float64(len(apiData)) {
		t.Errorf("inspect %s = %v; want api.key of %d bytes", apiID, m, len(apiData))
	}
	r = l.run("", "secret", "inspect", "nope")
	if r.code != exitError {
		t.Errorf("inspect an unknown secret: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "not found")

	// update replaces the labels; without --label it clears them
	r = l.ok("", "secret", "update", dbID, "--label", "env=staging")
	if labels := l.inspectJSON("db.password")["labels"]; fmt.Sprint(labels) != "map[env:staging]" {
		t.Errorf("labels after update = %v; want only env=staging (stdout %q)", labels, r.stdout)
	}
	l.ok("", "secret", "update", "db.password")
	if labels, ok := l.inspectJSON("db.password")["labels"].(map[string]any); !ok || len(labels) != 0 {
		t.Errorf("labels after update with none = %v; want {}", labels)
	}

	// grant to self: the node writes the file; revoke: it deletes it
	dbPath := filepath.Join(secretsDir, "db.password")
	l.ok("", "secret", "grant", "db.password", "self")
	waitForSecretFile(t, dbPath, dbData)
	if grants := l.inspectJSON("db.password")["grants"]; fmt.Sprint(grants) != "["+nodeID+"]" {
		t.Errorf("grants = %v; want [%s]", grants, nodeID)
	}
	// secret ls counts the grants (issue 18); secret inspect names them.
	r = l.ok("", "secret", "ls", "--filter", "name=db.password")
	if row := strings.Fields(strings.Split(r.stdout, "\n")[1]); len(row) < 8 || row[6] != "1" || strings.Contains(r.stdout, nodeID) {
		t.Errorf("secret ls does not count the one grant in its GRANTS column:\n%s", r.stdout)
	}
	if r = l.ok("", "secret", "inspect", "db.password"); !strings.Contains(r.stdout, nodeID) {
		t.Errorf("secret inspect does not show the grant to %s:\n%s", nodeID, r.stdout)
	}
	l.ok("", "secret", "revoke", "db.password", "self")
	waitForNoFile(t, dbPath)

	// create --grant self delivers at once; rm deletes the copy
	birthPath := filepath.Join(secretsDir, "birth")
	l.ok(string(birthData), "secret", "create", "birth", "-", "--grant", "self", "--label", "a=b=c")
	waitForSecretFile(t, birthPath, birthData)
	if labels := l.inspectJSON("birth")["labels"]; fmt.Sprint(labels) != "map[a:b=c]" {
		t.Errorf("labels = %v; want a=b=c", labels)
	}
	r = l.ok("", "secret", "rm", "birth")
	if r.stdout != "birth\n" {
		t.Errorf("secret rm birth printed %q", r.stdout)
	}
	waitForNoFile(t, birthPath)

	// rm of a known and an unknown secret: removes the known one, exit 1
	r = l.run("", "secret", "rm", "nope", "api.key")
	if r.code != exitError || r.stdout != "api.key\n" {
		t.Errorf("secret rm nope api.key: exit %d, stdout %q; want 1 and api.key removed", r.code, r.stdout)
	}
	checkErrorLine(t, r, "nope")
	if r := l.run("", "secret", "inspect", "api.key"); r.code != exitError {
		t.Errorf("api.key still there after rm: exit %d, stdout %q", r.code, r.stdout)
	}
	r = l.ok("", "secret", "ls", "-q")
	if r.stdout != dbID+"\n" {
		t.Errorf("secret ls -q after rm = %q; want only %s", r.stdout, dbID)
	}

	// Nothing but delivered files holds the data in the clear outside the
	// data dir: the secrets dir is empty again.
	entries, err := os.ReadDir(secretsDir)
	if err != nil || len(entries) != 0 {
		t.Errorf("secrets dir holds %v (%v); want nothing", entries, err)
	}
}

func TestSecretCreateRequest(t *testing.T) {
	var status int
	var reply any
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status":
			answer(w, http.StatusOK, map[string]any{"node_id": "SELFID", "state": "ready"})
		default:
			answer(w, status, reply)
		}
	})
	decode := func(t *testing.T) api.SecretCreateRequest {
		t.Helper()
		var req api.SecretCreateRequest
		if err := json.Unmarshal([]byte(d.body("POST /v1/secrets")), &req); err != nil {
			t.Fatal(err)
		}
		return req
	}

	status, reply = http.StatusOK, map[string]string{"id": "S1"}
	r := runCLIInput(t, "data\x00bytes", "secret", "create", "n1", "-", "--label", "k=v", "--grant", "N2", "--grant", "self", "--socket", d.socket)
	if r.code != exitOK || r.stdout != "S1\n" || r.stderr != "" {
		t.Fatalf("create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	req := decode(t)
	if req.Name != "n1" || string(req.Data) != "data\x00bytes" || !maps.Equal(req.Labels, map[string]string{"k": "v"}) ||
		!slices.Equal(req.Grants, []string{"N2", "SELFID"}) {
		t.Errorf("sent %+v; want n1, the bytes from stdin, k=v, grants N2 and this node", req)
	}

	// The read is bounded: the server gets 500 KiB + 1 bytes and answers.
	status, reply = http.StatusRequestEntityTooLarge, map[string]string{"error": "secret data is 512001 bytes, more than the limit of 512000 (500 KiB)"}
	r = runCLIInput(t, strings.Repeat("y", 3<<20), "secret", "create", "n2", "-", "--socket", d.socket)
	if r.code != exitError || r.stdout != "" || r.stderr != "holdfast: secret data is 512001 bytes, more than the limit of 512000 (500 KiB)\n" {
		t.Errorf("too large: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := len(decode(t).Data); n != secrets.MaxSize+1 {
		t.Errorf("sent %d bytes; want %d", n, secrets.MaxSize+1)
	}
}

func TestSecretUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing-here.sock")
	dir := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"group alone", []string{"secret"}, exitUsage, "'secret' needs a subcommand: create, ls, inspect, rm, update, grant, revoke"},
		{"unknown subcommand", []string{"secret", "show"}, exitUsage, "unknown command 'secret show'"},
		{"create without file", []string{"secret", "create", "n"}, exitUsage, "missing FILE|-; run 'holdfast secret create --help' for usage"},
		{"create bad label", []string{"secret", "create", "n", "-", "--label", "k"}, exitUsage, `invalid value "k" for --label: want KEY=VALUE`},
		{"create label twice", []string{"secret", "create", "n", "-", "--label", "k=1", "--label=k=2"}, exitUsage, `label "k" given twice`},
		{"create empty grant", []string{"secret", "create", "n", "-", "--grant="}, exitUsage, "want a node ID"},
		{"create data from a flag", []string{"secret", "create", "n", "-", "--data", "x"}, exitUsage, "unknown flag --data"},
		{"create from a directory", []string{"secret", "create", "n", dir, "--socket", missing}, exitError, "it is a directory"},
		{"create from a missing file", []string{"secret", "create", "n", filepath.Join(dir, "none"), "--socket", missing}, exitError, "cannot read the secret file"},
		{"rm without refs", []string{"secret", "rm"}, exitUsage, "missing NAME|ID"},
		{"inspect two", []string{"secret", "inspect", "a", "b"}, exitUsage, "too many arguments"},
		{"grant without node", []string{"secret", "grant", "a"}, exitUsage, "missing NODE_ID"},
		{"revoke without args", []string{"secret", "revoke"}, exitUsage, "missing NAME|ID NODE_ID"},
		{"ls bad format", []string{"secret", "ls", "--format", "yaml"}, exitUsage, `invalid value "yaml" for --format`},
		{"rm unreachable", []string{"secret", "rm", "a", "b", "--socket", missing}, exitError, "cannot reach the holdfast daemon"},
		{"daemon empty secrets dir", []string{"daemon", "--secrets-dir="}, exitUsage, "--secrets-dir needs a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d; want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			checkErrorLine(t, r, tt.stderr)
		})
	}

	r := runCLI(t, "help")
	if !strings.Contains(r.stdout, "\nSecrets:\n") {
		t.Errorf("help has no Secrets section:\n%s", r.stdout)
	}
	for _, cmd := range []string{"create", "ls", "inspect", "rm", "update", "grant", "revoke"} {
		if !strings.Contains(r.stdout, "  secret "+cmd+" ") {
			t.Errorf("help does not list 'secret %s'", cmd)
		}
	}
	r = runCLI(t, "secret", "create", "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "--label KEY=VALUE") || !strings.Contains(r.stdout, "--grant NODE_ID") {
		t.Errorf("secret create --help: exit %d:\n%s", r.code, r.stdout)
	}
}

func TestSecretFormatting(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"sha256:0123456789abcdef0123", "0123456789ab"},
		{"sha256:abc", "abc"},
		{"", "-"},
	} {
		if got := shortDigest(tt.in); got != tt.want {
			t.Errorf("shortDigest(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		n    int
		want string
	}{{1, "1 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {secrets.MaxSize, "500.0 KiB"}} {
		if got := fmtSize(tt.n); got != tt.want {
			t.Errorf("fmtSize(%d) = %q; want %q", tt.n, got, tt.want)
		}
	}
	if got := labelsText(map[string]string{"b": "2", "a": "1=x"}, ","); got != "a=1=x,b=2" {
		t.Errorf("labelsText = %q", got)
	}
	var buf bytes.Buffer
	if err := printSecrets(&buf, []api.SecretMeta{{ID: "ID1", Name: "n", Size: 3, Digest: "sha256:" + strings.Repeat("f", 64)}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(strings.Split(buf.String(), "\n")[1]), " "); got != "n ID1 3 B ffffffffffff - - -" {
		t.Errorf("secret ls row = %q", got)
	}
}
