package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/testutil"
	"github.com/holdfast/holdfast/manager"
)

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 60 * time.Second

// startManager runs an in-process node and returns its control socket and
// its secrets dir (a temporary directory, never /run/holdfast/secrets).
func startManager(t *testing.T) (socket, secretsDir string) {
	t.Helper()
	socket = filepath.Join(t.TempDir(), "hf.sock")
	secretsDir = filepath.Join(t.TempDir(), "secrets")
	cfg := manager.DefaultConfig(t.TempDir())
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.SocketPath = socket
	cfg.SecretsDir = secretsDir
	m, err := manager.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager Run: %v", err)
		}
	})
	waitForSocket(t, socket, done)
	return socket, secretsDir
}

// waitForSocket waits until the daemon at socket answers status, failing
// early if its Run returns.
func waitForSocket(t *testing.T, socket string, done <-chan error) {
	t.Helper()
	cl := api.NewUnixClient(socket)
	defer cl.Close()
	testutil.Eventually(t, waitTimeout, func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("daemon stopped before answering: %v", err)
		default:
		}
		_, err := cl.Status(t.Context())
		return err == nil, "daemon at " + socket + " to answer: " + fmt.Sprint(err)
	})
}

func statusJSON(t *testing.T, socket string) map[string]any {
	t.Helper()
	r := runCLI(t, "status", "--format", "json", "--socket", socket)
	if r.code != exitOK {
		t.Fatalf("status: exit %d, stderr %q", r.code, r.stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, r.stdout)
	}
	return st
}

func TestEndToEnd(t *testing.T) {
	socket, _ := startManager(t)

	st := statusJSON(t, socket)
	if st["state"] != "uninitialized" {
		t.Fatalf("state = %v before init; want uninitialized", st["state"])
	}
	r := runCLI(t, "--socket", socket, "status")
	if r.code != exitOK || !strings.Contains(r.stdout, "'holdfast init'") {
		t.Errorf("status before init: exit %d, stdout %q", r.code, r.stdout)
	}

	r = runCLI(t, "init", "--socket", socket)
	if r.code != exitOK {
		t.Fatalf("init: exit %d, stderr %q", r.code, r.stderr)
	}
	m := regexp.MustCompile(`^Cluster initialized: (\S+)\nThis node \((\S+)\) is now its first manager\.\n`).FindStringSubmatch(r.stdout)
	if m == nil || strings.Count(r.stdout, "holdfast join --token HFTKN-1-") != 2 {
		t.Fatalf("init printed:\n%s", r.stdout)
	}
	clusterID, nodeID := m[1], m[2]

	st = statusJSON(t, socket)
	for _, k := range []string{"node_id", "cluster_id", "role", "state", "autolock", "is_leader", "leader", "raft", "managers"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status --format json has no %q", k)
		}
	}
	if st["node_id"] != nodeID || st["cluster_id"] != clusterID || st["role"] != "manager" || st["state"] != "ready" || st["autolock"] != false {
		t.Errorf("status = %v; want node %s of cluster %s, a ready manager", st, nodeID, clusterID)
	}
	checkKeys(t, "leader", st["leader"], "node_id", "addr")
	checkKeys(t, "raft", st["raft"], "term", "last_index", "commit_index", "applied_index")
	managers, _ := st["managers"].([]any)
	if len(managers) != 1 {
		t.Fatalf("managers = %v; want one", st["managers"])
	}
	checkKeys(t, "managers[0]", managers[0], "node_id", "addr", "leader", "voter", "reachable")

	r = runCLI(t, "node", "ls", "--format", "json", "--socket", socket)
	var nodes []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &nodes); r.code != exitOK || err != nil {
		t.Fatalf("node ls --format json: exit %d, %v, stdout %q, stderr %q", r.code, err, r.stdout, r.stderr)
	}
	if len(nodes) != 1 || nodes[0]["id"] != nodeID || nodes[0]["role"] != "manager" {
		t.Errorf("node ls = %v; want this node, a manager", nodes)
	}
	checkKeys(t, "node", nodes[0], "id", "role", "addr", "status", "leader", "voter", "cert_expires_at")

	r = runCLI(t, "node", "ls", "-q", "--socket", socket)
	if r.stdout != nodeID+"\n" {
		t.Errorf("node ls -q = %q; want %q", r.stdout, nodeID+"\n")
	}
	r = runCLI(t, "node", "inspect", "self", "--socket", socket, "--format", "json")
	if r.code != exitOK || !strings.Contains(r.stdout, `"id": "`+nodeID+`"`) {
		t.Errorf("node inspect self: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, "join-token", "-q", "worker", "--socket", socket)
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "HFTKN-1-") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("join-token -q worker: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	old := r.stdout
	r = runCLI(t, "--socket", socket, "join-token", "--rotate", "worker")
	if r.code != exitOK || !strings.Contains(r.stdout, "holdfast join --token HFTKN-1-") || strings.Contains(r.stdout, strings.TrimSpace(old)) {
		t.Errorf("join-token --rotate worker: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// Data-plane keys: the leader bootstraps both keyrings at once.
	var keys []map[string]any
	deadline := time.Now().Add(waitTimeout)
	for len(keys) < 4 && time.Now().Before(deadline) {
		r = runCLI(t, "keys", "ls", "--format", "json", "--socket", socket)
		if r.code == exitError && strings.Contains(r.stderr, "no data-plane keys yet") {
			continue // not an empty list: an error that says so
		}
		if err := json.Unmarshal([]byte(r.stdout), &keys); r.code != exitOK || err != nil {
			t.Fatalf("keys ls --format json: exit %d, %v, stdout %q, stderr %q", r.code, err, r.stdout, r.stderr)
		}
	}
	primaries := map[any]int{}
	for _, k := range keys {
		checkKeys(t, "key", k, "subsystem", "key_id", "lamport", "created_at", "primary")
		if len(k) != 5 {
			t.Errorf("keys ls shows more than the five metadata fields: %v", k)
		}
		if k["primary"] == true {
			primaries[k["subsystem"]]++
		}
	}
	if len(keys) != 4 || primaries["gossip"] != 1 || primaries["ipsec"] != 1 {
		t.Fatalf("keys ls = %v; want 2 gossip and 2 ipsec keys, one primary each", keys)
	}
	cl := api.NewUnixClient(socket)
	ring, err := cl.Keyring(t.Context(), "ipsec")
	cl.Close()
	if err != nil || len(ring.Keys) != 2 {
		t.Fatalf("GET /v1/keys/ipsec: %v", err)
	}
	table := runCLI(t, "keys", "ls", "--socket", socket)
	quiet := runCLI(t, "keys", "ls", "-q", "--socket", socket)
	if !strings.HasPrefix(table.stdout, "SUBSYSTEM") || strings.Count(quiet.stdout, "\n") != 4 {
		t.Errorf("keys ls table %q, -q %q", table.stdout, quiet.stdout)
	}
	for _, k := range ring.Keys {
		for _, out := range []string{r.stdout, table.stdout, quiet.stdout} {
			if strings.Contains(out, base64.StdEncoding.EncodeToString(k.Key)) || strings.Contains(out, hex.EncodeToString(k.Key)) {
				t.Fatalf("keys ls printed key material")
			}
		}
	}

	r = runCLI(t, "init", "--socket", socket)
	if r.code != exitError {
		t.Errorf("second init: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "already part of cluster "+clusterID)

	r = runCLI(t, "node", "rm", nodeID, "--socket", socket)
	if r.code != exitError {
		t.Errorf("node rm self: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "holdfast leave")

	r = runCLI(t, "frobnicate", "--socket", socket)
	if r.code != exitUsage {
		t.Errorf("unknown command: exit %d; want 2", r.code)
	}
}

func checkKeys(t *testing.T, what string, v any, keys ...string) {
	t.Helper()
	obj, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s = %v; want an object", what, v)
		return
	}
	for _, k := range keys {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s has no %q: %v", what, k, obj)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and waiting readers.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer contains s, or the command exits.
func (b *syncBuffer) waitFor(t *testing.T, s string, exited <-chan int) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		b.mu.Lock()
		found, changed := strings.Contains(b.buf.String(), s), b.changed
		b.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case code := <-exited:
			t.Fatalf("exited with %d before printing %q; output:\n%s", code, s, b.String())
		case <-deadline:
			t.Fatalf("%q not printed within %s; output:\n%s", s, waitTimeout, b.String())
		}
	}
}

// startCLI runs a long-running command until the returned stop is called;
// stop returns the exit status.
func startCLI(t *testing.T, args ...string) (stdout, stderr *syncBuffer, exited <-chan int, stop func() int) {
	t.Helper()
	stdout, stderr = newSyncBuffer(), newSyncBuffer()
	c := &cli{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan int, 1)
	go func() { ch <- c.run(ctx, args) }()
	stopped := false
	var code int
	stop = func() int {
		if !stopped {
			cancel()
			code, stopped = <-ch, true
		}
		return code
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, ch, stop
}

func TestDaemonCommand(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "holdfast.sock")
	secretsDir := filepath.Join(t.TempDir(), "secrets")
	_, stderr, exited, stop := startCLI(t, "daemon", "--data-dir", dir, "--listen-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--log-format", "json", "--secrets-dir", secretsDir)
	stderr.waitFor(t, "waiting for 'holdfast init'", exited)
	if !strings.Contains(stderr.String(), `"secrets_dir":"`+secretsDir+`"`) {
		t.Errorf("the start log line does not name --secrets-dir %s:\n%s", secretsDir, stderr.String())
	}
	if st := statusJSON(t, socket); st["state"] != "uninitialized" {
		t.Errorf("state = %v; want uninitialized", st["state"])
	}
	if code := stop(); code != exitOK {
		t.Errorf("daemon exit %d after interrupt; want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"holdfast daemon stopped"`) {
		t.Errorf("no JSON log line for the stop in:\n%s", stderr.String())
	}
}

func TestDevCommand(t *testing.T) {
	const n = 3
	dir := t.TempDir()
	stdout, stderr, exited, stop := startCLI(t, "dev", "--managers", fmt.Sprint(n), "--dir", dir, "--metrics-addr", "127.0.0.1:0")
	stdout.waitFor(t, "cluster ready\n", exited)
	out := stdout.String()
	// Each node serves its metrics and health on a port of its own.
	metrics := regexp.MustCompile(`Node (\d) metrics: http://(\S+)/metrics  health: http://(\S+)/v1/health\n`).FindAllStringSubmatch(out, -1)
	if len(metrics) != n {
		t.Errorf("dev --metrics-addr printed %d metrics lines; want %d:\n%s", len(metrics), n, out)
	}
	for _, m := range metrics {
		if code, status := getHealth(t, m[3]); code != 200 || status != "ready" {
			t.Errorf("node %s health: got %d %q; want 200 ready", m[1], code, status)
		}
	}
	socket := filepath.Join(dir, "node-1.sock")
	for _, want := range []string{"export HOLDFAST_SOCKET=" + socket + "\n", "Worker join token:   HFTKN-1-", "Manager join token:  HFTKN-1-"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev output does not contain %q:\n%s", want, out)
		}
	}
	for i := 1; i <= n; i++ {
		if !strings.Contains(out, filepath.Join(dir, fmt.Sprintf("node-%d.sock", i))) {
			t.Errorf("dev output does not name node %d's socket:\n%s", i, out)
		}
	}
	if !strings.Contains(out, "SECRETS") {
		t.Errorf("dev's node table has no SECRETS column:\n%s", out)
	}
	for i := 1; i <= n; i++ {
		if !strings.Contains(out, filepath.Join(dir, fmt.Sprintf("node-%d-secrets", i))) {
			t.Errorf("dev output does not name node %d's secrets dir:\n%s", i, out)
		}
	}
	lastSocket := filepath.Join(dir, fmt.Sprintf("node-%d.sock", n))
	st := statusJSON(t, lastSocket)
	if managers, _ := st["managers"].([]any); len(managers) != n {
		t.Errorf("node %d sees managers %v; want %d", n, st["managers"], n)
	}
	// A secret created through node 1 and granted to node n lands in node
	// n's own secrets dir, and in no other node's.
	lastID, _ := st["node_id"].(string)
	data := "dev-secret-data\n"
	r := runCLIInput(t, data, "secret", "create", "dev.secret", "-", "--grant", lastID, "--socket", socket)
	if r.code != exitOK {
		t.Fatalf("secret create: exit %d, stderr %q", r.code, r.stderr)
	}
	waitForSecretFile(t, filepath.Join(dir, fmt.Sprintf("node-%d-secrets", n), "dev.secret"), []byte(data))
	if _, _, ok := secretFile(t, filepath.Join(dir, "node-1-secrets", "dev.secret")); ok {
		t.Errorf("node 1 got a secret granted only to node %d", n)
	}
	if code := stop(); code != exitOK {
		t.Errorf("dev exit %d after interrupt; want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.HasSuffix(stdout.String(), "cluster stopped\n") {
		t.Errorf("dev did not end with 'cluster stopped':\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "starting node 1 of 3\n") {
		t.Errorf("no progress lines on stderr:\n%s", stderr.String())
	}
}

// TestDevAutolock runs a one-manager autolocked dev cluster: it prints the
// unlock key, labelled, before 'cluster ready', and the node is autolocked.
func TestDevAutolock(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, exited, stop := startCLI(t, "dev", "--managers", "1", "--autolock", "--dir", dir)
	stdout.waitFor(t, "cluster ready\n", exited)
	out := stdout.String()
	m := regexp.MustCompile(`\nUnlock key:\n(HFKEY-1-\S+)\n\n` + regexp.QuoteMeta(keyWarning) + `\n\ncluster ready\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev --autolock does not print the unlock key, labelled, before 'cluster ready':\n%s", out)
	}
	if _, err := autolock.ParseKey(m[1]); err != nil {
		t.Errorf("dev --autolock printed an unlock key that does not parse: %v", err)
	}
	if st := statusJSON(t, filepath.Join(dir, "node-1.sock")); st["state"] != "ready" || st["autolock"] != true {
		t.Errorf("status = %v; want a ready node with autolock on", st)
	}
	if code := stop(); code != exitOK {
		t.Errorf("dev --autolock exit %d after interrupt; want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.HasSuffix(stdout.String(), "cluster stopped\n") {
		t.Errorf("dev --autolock did not end with 'cluster stopped':\n%s", stdout.String())
	}
	if strings.Contains(stderr.String(), m[1]) {
		t.Errorf("dev --autolock printed the unlock key on stderr:\n%s", stderr.String())
	}
}
