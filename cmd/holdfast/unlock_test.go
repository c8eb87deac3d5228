package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/manager"
)

// keyChecker runs commands against one daemon and fails the test if any
// unlock key or share it knows shows up on stderr, or anywhere in the
// output of unlock (which never prints a key).
type keyChecker struct {
	t      *testing.T
	socket string
	keys   []string
}

func (k *keyChecker) add(secrets ...string) {
	for _, s := range secrets {
		k.keys = append(k.keys, s, strings.ToLower(s[strings.LastIndex(s, "-")+1:]))
	}
}

func (k *keyChecker) run(stdin string, args ...string) result {
	k.t.Helper()
	r := runCLIInput(k.t, stdin, append(args, "--socket", k.socket)...)
	for _, key := range k.keys {
		if strings.Contains(strings.ToLower(r.stderr), key) {
			k.t.Errorf("%q printed an unlock key or share on stderr: %q", args, r.stderr)
		}
		if args[0] == "unlock" && strings.Contains(strings.ToLower(r.stdout), key) {
			k.t.Errorf("%q printed an unlock key or share: %q", args, r.stdout)
		}
	}
	return r
}

// ok runs a command that must succeed and print nothing on stderr.
func (k *keyChecker) ok(stdin string, args ...string) result {
	k.t.Helper()
	r := k.run(stdin, args...)
	if r.code != exitOK || r.stderr != "" {
		k.t.Fatalf("%q: exit %d, stdout %q, stderr %q; want success", args, r.code, r.stdout, r.stderr)
	}
	return r
}

func (k *keyChecker) status() map[string]any {
	k.t.Helper()
	r := k.ok("", "status", "--format", "json")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		k.t.Fatalf("status --format json: %v\n%s", err, r.stdout)
	}
	return st
}

func (k *keyChecker) wantState(state string) {
	k.t.Helper()
	if st := k.status(); st["state"] != state {
		k.t.Fatalf("state = %v; want %s", st["state"], state)
	}
}

// runNode runs an in-process manager on dataDir until the returned stop is
// called (also at cleanup), failing the test if its Run fails.
func runNode(t *testing.T, dataDir, socket, secretsDir string) (stop func()) {
	t.Helper()
	cfg := manager.DefaultConfig(dataDir)
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
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	waitForSocket(t, socket, done)
	return stop
}

var (
	keyLineRE   = regexp.MustCompile(`(?m)^Unlock key:\n(HFKEY-1-\S+)\n\n` + regexp.QuoteMeta(keyWarning) + `\n`)
	shareLineRE = regexp.MustCompile(`(?m)^Share (\d+) of (\d+) \(any (\d+) unlock\): (HFSHR-1-\S+)$`)
)

// printedKey returns the unlock key out shows, labelled, on a line of its
// own with the warning after it; it must parse.
func printedKey(t *testing.T, what, out string) string {
	t.Helper()
	m := keyLineRE.FindAllStringSubmatch(out, -1)
	if len(m) != 1 {
		t.Fatalf("%s does not print one unlock key on a line of its own with the warning:\n%s", what, out)
	}
	if _, err := autolock.ParseKey(m[0][1]); err != nil {
		t.Fatalf("%s printed an unlock key that does not parse: %v", what, err)
	}
	return m[0][1]
}

// waitWrapped waits until the node's DEK file and TLS key are wrapped
// under the KEK of key: the node has re-wrapped them after a rotation.
func waitWrapped(t *testing.T, dataDir string, key autolock.Key) {
	t.Helper()
	want := key.KEK().ID()
	waitUntil(t, "the node's keys to be wrapped under the new unlock key", func() bool {
		id, ok := keyfiles.WrappedKEKID(dataDir)
		return ok && id == want
	})
}

func TestAutolockEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	socket := filepath.Join(t.TempDir(), "hf.sock")
	secretsDir := filepath.Join(t.TempDir(), "secrets")
	stop := runNode(t, dataDir, socket, secretsDir)
	k := &keyChecker{t: t, socket: socket}

	r := k.ok("", "init", "--autolock")
	key := printedKey(t, "init --autolock", r.stdout)
	k.add(key)
	if !strings.HasPrefix(r.stdout, "Cluster initialized: ") || strings.Count(r.stdout, "holdfast join --token HFTKN-1-") != 2 {
		t.Errorf("init --autolock lacks the usual output:\n%s", r.stdout)
	}
	if st := k.status(); st["state"] != "ready" || st["autolock"] != true {
		t.Fatalf("after init --autolock: status %v; want ready, autolock on", st)
	}

	// A restarted manager comes up locked and serves only status and unlock.
	stop()
	stop = runNode(t, dataDir, socket, secretsDir)
	k.wantState("locked")
	r = k.run("", "node", "ls")
	if r.code != exitError || r.stderr != "holdfast: this node is locked; run 'holdfast unlock'\n" || r.stdout != "" {
		t.Errorf("node ls on a locked node: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = k.run("", "unlock-key", "-q")
	if r.code != exitError || !strings.Contains(r.stderr, "this node is locked") {
		t.Errorf("unlock-key on a locked node: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	wrong := autolock.NewKey().String()
	k.add(wrong)
	r = k.run(wrong+"\n", "unlock")
	if r.code != exitError || r.stdout != "" {
		t.Errorf("unlock with a wrong key: exit %d, stdout %q; want 1 and nothing", r.code, r.stdout)
	}
	checkErrorLine(t, r, "invalid unlock key")
	k.wantState("locked")

	keyFile := filepath.Join(t.TempDir(), "unlock.key")
	if err := os.WriteFile(keyFile, []byte("  "+key+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = k.ok("", "unlock", "--key-file", keyFile)
	if r.stdout != "Node unlocked.\n" {
		t.Errorf("unlock --key-file: stdout %q; want \"Node unlocked.\"", r.stdout)
	}
	// Unlocked, it catches up (catching-up), then is ready.
	waitUntil(t, "the unlocked node to be ready", func() bool { return k.status()["state"] == "ready" })
	waitUntil(t, "the unlocked node to lead", func() bool { return k.status()["is_leader"] == true })

	r = k.ok("", "unlock-key", "-q")
	if r.stdout != key+"\n" {
		t.Errorf("unlock-key -q after the unlock does not print the key from init")
	}
	r = k.ok("", "unlock-key")
	if got := printedKey(t, "unlock-key", r.stdout); got != key {
		t.Errorf("unlock-key does not show the key from init")
	}

	// Rotate to a key split 2-of-3.
	r = k.ok("", "unlock-key", "--rotate", "--shares", "3", "--threshold", "2")
	m := shareLineRE.FindAllStringSubmatch(r.stdout, -1)
	if len(m) != 3 {
		t.Fatalf("unlock-key --rotate --shares 3 --threshold 2 does not print 3 shares:\n%s", r.stdout)
	}
	var shares []string
	var parsed []autolock.Share
	for i, sm := range m {
		if sm[1] != fmt.Sprint(i+1) || sm[2] != "3" || sm[3] != "2" {
			t.Errorf("share line %q; want 'Share %d of 3 (any 2 unlock): …'", sm[0], i+1)
		}
		sh, err := autolock.ParseShare(sm[4])
		if err != nil {
			t.Fatalf("share %d does not parse: %v", i+1, err)
		}
		shares = append(shares, sm[4])
		parsed = append(parsed, sh)
	}
	k.add(shares...)
	newKey, err := autolock.Combine(parsed[:2])
	if err != nil {
		t.Fatalf("the shares do not combine: %v", err)
	}
	k.add(newKey.String())
	if strings.Contains(r.stdout, "HFKEY-") {
		t.Errorf("unlock-key --rotate --shares prints the whole key:\n%s", r.stdout)
	}
	if r = k.ok("", "unlock-key", "-q"); r.stdout != newKey.String()+"\n" {
		t.Errorf("unlock-key -q after the rotation does not print the key the shares recover")
	}
	waitWrapped(t, dataDir, newKey)

	// Restart; unlock with 2 of the 3 shares, one at a time.
	stop()
	runNode(t, dataDir, socket, secretsDir)
	k.wantState("locked")
	r = k.ok(shares[0]+"\n", "unlock")
	if r.stdout != "1/2 shares: enter the next share with 'holdfast unlock'\n" {
		t.Errorf("unlock with share 1: stdout %q; want the progress 1/2", r.stdout)
	}
	k.wantState("locked")
	shareFile := filepath.Join(t.TempDir(), "share3")
	if err := os.WriteFile(shareFile, []byte(shares[2]), 0o600); err != nil {
		t.Fatal(err)
	}
	r = k.ok("", "unlock", "--key-file", shareFile)
	if r.stdout != "Node unlocked.\n" {
		t.Errorf("unlock with share 3: stdout %q; want \"Node unlocked.\"", r.stdout)
	}
	waitUntil(t, "the unlocked node to be ready", func() bool { return k.status()["state"] == "ready" })
	r = k.run("", "unlock")
	if r.code != exitError || !strings.Contains(r.stderr, "no unlock key on stdin") {
		t.Errorf("unlock with nothing on stdin: exit %d, stderr %q", r.code, r.stderr)
	}

	// Autolock off, then on again with a new key.
	r = k.ok("", "update", "--autolock=false")
	if !strings.Contains(r.stdout, "Autolock is off") || !strings.Contains(r.stdout, "stored unwrapped") || strings.Contains(r.stdout, "HFKEY-") {
		t.Errorf("update --autolock=false printed:\n%s", r.stdout)
	}
	waitUntil(t, "status to show autolock off", func() bool { return k.status()["autolock"] == false })
	r = k.ok("", "update", "--autolock=true")
	again := printedKey(t, "update --autolock=true", r.stdout)
	k.add(again)
	if again == key || again == newKey.String() {
		t.Errorf("update --autolock=true printed an old key")
	}
	if st := k.status(); st["autolock"] != true {
		t.Errorf("after update --autolock=true: autolock = %v", st["autolock"])
	}
	if r = k.ok("", "unlock-key", "-q"); r.stdout != again+"\n" {
		t.Errorf("unlock-key -q does not print the key update --autolock=true printed")
	}
}

func TestUnlockSendsTheKey(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	var reply api.UnlockResponse
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		var req api.UnlockRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		sent = append(sent, req.Key)
		resp := reply
		mu.Unlock()
		if req.Key == "HFKEY-1-wrong" {
			answer(w, http.StatusForbidden, map[string]string{"error": "invalid unlock key: it does not open this node's keys; the node stays locked"})
			return
		}
		answer(w, http.StatusOK, resp)
	})
	setReply := func(r api.UnlockResponse) { mu.Lock(); reply = r; mu.Unlock() }
	lastSent := func() string { mu.Lock(); defer mu.Unlock(); return sent[len(sent)-1] }

	setReply(api.UnlockResponse{State: api.StateReady})
	r := runCLIInput(t, "\n  HFKEY-1-abc \r\n", "unlock", "--socket", d.socket)
	if r.code != exitOK || r.stdout != "Node unlocked.\n" || r.stderr != "" {
		t.Errorf("unlock: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := lastSent(); got != "HFKEY-1-abc" {
		t.Errorf("sent %q; want the key trimmed", got)
	}

	setReply(api.UnlockResponse{State: api.StateLocked, Shares: 2, SharesNeeded: 3})
	r = runCLIInput(t, "HFSHR-1-two\n", "unlock", "--socket", d.socket)
	if r.code != exitOK || r.stdout != "2/3 shares: enter the next share with 'holdfast unlock'\n" {
		t.Errorf("unlock with a share: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	writeTestFile(t, keyFile, "HFSHR-1-three\n")
	setReply(api.UnlockResponse{State: api.StateReady})
	r = runCLIInput(t, "ignored", "unlock", "--key-file", keyFile, "--socket", d.socket)
	if r.code != exitOK || r.stdout != "Node unlocked.\n" || lastSent() != "HFSHR-1-three" {
		t.Errorf("unlock --key-file: exit %d, stdout %q, stderr %q, sent %q", r.code, r.stdout, r.stderr, lastSent())
	}
	r = runCLIInput(t, "HFKEY-1-wrong", "unlock", "--socket", d.socket)
	if r.code != exitError || r.stdout != "" || r.stderr != "holdfast: invalid unlock key: it does not open this node's keys; the node stays locked\n" {
		t.Errorf("unlock with a wrong key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLIInput(t, " \n\t\n", "unlock", "--socket", d.socket)
	if r.code != exitError || !strings.Contains(r.stderr, "no unlock key on stdin") {
		t.Errorf("unlock with blank stdin: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, "unlock", "--socket", d.socket, "--key-file", t.TempDir())
	if r.code != exitError || !strings.Contains(r.stderr, "cannot read the --key-file") {
		t.Errorf("unlock --key-file DIR: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, "unlock", "HFKEY-1-onthecommandline", "--socket", d.socket)
	if r.code != exitUsage || strings.Contains(r.stderr, "onthecommandline") {
		t.Errorf("unlock KEY: exit %d, stderr %q; want a usage error that does not repeat the key", r.code, r.stderr)
	}
}

func TestUnlockKeyOutput(t *testing.T) {
	shares := []string{"HFSHR-1-aaa", "HFSHR-1-bbb", "HFSHR-1-ccc", "HFSHR-1-ddd", "HFSHR-1-eee"}
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/unlock-key":
			answer(w, http.StatusOK, api.UnlockKeyResponse{UnlockKey: "HFKEY-1-current"})
		case "POST /v1/unlock-key/rotate":
			var req api.RotateUnlockKeyRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			switch {
			case req.Shares == 0 && req.Threshold == 0:
				answer(w, http.StatusOK, api.UnlockKeyResponse{UnlockKey: "HFKEY-1-new"})
			case req.Shares == 5 && req.Threshold == 3:
				answer(w, http.StatusOK, api.UnlockKeyResponse{UnlockKey: "HFKEY-1-split", Shares: shares, Threshold: 3})
			default:
				answer(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("shares: want 2 <= --threshold <= --shares <= 255 (got %d of %d)", req.Threshold, req.Shares)})
			}
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	run := func(args ...string) result {
		t.Helper()
		return runCLI(t, append(append([]string{"unlock-key"}, args...), "--socket", d.socket)...)
	}

	r := run()
	if r.code != exitOK || r.stdout != lines("", "Unlock key:", "HFKEY-1-current", "", keyWarning) {
		t.Errorf("unlock-key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r = run("-q"); r.stdout != "HFKEY-1-current\n" {
		t.Errorf("unlock-key -q: stdout %q", r.stdout)
	}
	r = run("--rotate")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "Rotated the unlock key.") || !strings.HasSuffix(r.stdout, lines("", "Unlock key:", "HFKEY-1-new", "", keyWarning)) {
		t.Errorf("unlock-key --rotate: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := strings.TrimSpace(d.body("POST /v1/unlock-key/rotate")); got != "{}" {
		t.Errorf("unlock-key --rotate sent %s; want {}", got)
	}
	if r = run("--rotate", "-q"); r.stdout != "HFKEY-1-new\n" {
		t.Errorf("unlock-key --rotate -q: stdout %q", r.stdout)
	}

	r = run("--rotate", "--shares", "5", "--threshold", "3")
	if r.code != exitOK {
		t.Fatalf("unlock-key --rotate --shares 5 --threshold 3: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := strings.TrimSpace(d.body("POST /v1/unlock-key/rotate")); got != `{"shares":5,"threshold":3}` {
		t.Errorf("sent %s; want shares 5, threshold 3", got)
	}
	for i, s := range shares {
		if want := fmt.Sprintf("\nShare %d of 5 (any 3 unlock): %s\n", i+1, s); !strings.Contains(r.stdout, want) {
			t.Errorf("unlock-key --rotate --shares does not print %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "HFKEY-1-split") || !strings.HasSuffix(r.stdout, "\n\n"+sharesWarning+"\n") {
		t.Errorf("unlock-key --rotate --shares: want the shares and the warning, not the whole key:\n%s", r.stdout)
	}
	if r = run("--rotate", "--shares=5", "--threshold=3", "-q"); r.stdout != strings.Join(shares, "\n")+"\n" {
		t.Errorf("unlock-key --rotate --shares -q: stdout %q; want only the shares, one a line", r.stdout)
	}

	r = run("--rotate", "--shares", "2", "--threshold", "3")
	if r.code != exitError || r.stdout != "" {
		t.Errorf("inconsistent shares: exit %d, stdout %q", r.code, r.stdout)
	}
	checkErrorLine(t, r, "shares: want 2 <= --threshold <= --shares <= 255 (got 3 of 2)")
	r = run("--rotate", "--shares", "4")
	checkErrorLine(t, r, "(got 0 of 4)")
}

func TestUpdateAutolockOutput(t *testing.T) {
	d := startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		var req api.UpdateRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Autolock != nil && *req.Autolock {
			answer(w, http.StatusOK, api.UpdateResponse{UnlockKey: "HFKEY-1-on"})
			return
		}
		answer(w, http.StatusOK, api.UpdateResponse{})
	})
	r := runCLI(t, "update", "--autolock=true", "--socket", d.socket)
	if want := lines("Cluster settings updated.", "", "Unlock key:", "HFKEY-1-on", "", keyWarning); r.code != exitOK || r.stdout != want {
		t.Errorf("update --autolock=true: exit %d, stdout %q; want %q", r.code, r.stdout, want)
	}
	r = runCLI(t, "update", "--autolock=false", "--socket", d.socket)
	if r.code != exitOK || !strings.Contains(r.stdout, "Autolock is off") || strings.Contains(r.stdout, "HFKEY") {
		t.Errorf("update --autolock=false: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, "update", "--cert-expiry=720h", "--socket", d.socket)
	if r.stdout != "Cluster settings updated.\n" {
		t.Errorf("update --cert-expiry: stdout %q", r.stdout)
	}
}

// TestDaemonUnlockKeyCommand: a daemon restarted with autolock on and
// --unlock-key-command unlocks itself with the key the command prints, and
// logs no key.
func TestDaemonUnlockKeyCommand(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "holdfast.sock")
	secretsDir := filepath.Join(t.TempDir(), "secrets")
	args := []string{"daemon", "--data-dir", dir, "--listen-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--secrets-dir", secretsDir}
	_, stderr, exited, stop := startCLI(t, args...)
	stderr.waitFor(t, "waiting for 'holdfast init'", exited)
	k := &keyChecker{t: t, socket: socket}
	key := printedKey(t, "init --autolock", k.ok("", "init", "--autolock").stdout)
	k.add(key)
	if code := stop(); code != exitOK {
		t.Fatalf("daemon exit %d; stderr:\n%s", code, stderr.String())
	}
	firstLog := stderr.String()

	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, exited, stop = startCLI(t, append(args, "--unlock-key-command", "cat "+shellQuote(keyFile))...)
	stderr.waitFor(t, "unlock_key_command=true", exited)
	cl := api.NewUnixClient(socket)
	defer cl.Close()
	waitUntil(t, "the daemon to unlock itself", func() bool {
		st, err := cl.Status(t.Context())
		return err == nil && st.State == api.StateReady
	})
	if code := stop(); code != exitOK {
		t.Errorf("daemon exit %d; stderr:\n%s", code, stderr.String())
	}
	for _, log := range []string{firstLog, stderr.String()} {
		if strings.Contains(log, key) || strings.Contains(log, key[len("HFKEY-1-"):]) {
			t.Errorf("the daemon logged the unlock key:\n%s", log)
		}
	}
}
