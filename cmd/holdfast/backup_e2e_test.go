package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/testutil"
)

// newUnlockKey is a well-formed unlock key of no cluster.
func newUnlockKey(t *testing.T) string {
	t.Helper()
	return autolock.NewKey().String()
}

// These tests run the real binary: daemons as processes, and every
// command through it.

const e2eCanary = "CANARY-e2e-backup-4c9d"

// binRun runs the holdfast binary with stdin and no HOLDFAST_* variables.
func binRun(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run holdfast %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// daemonProc is a holdfast daemon process on 127.0.0.1 with a free port.
type daemonProc struct {
	dir, socket string
	cmd         *exec.Cmd
	logs        *syncBuffer
	done        chan error
}

func startDaemonProc(t *testing.T, bin, dir string) *daemonProc {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "hfb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &daemonProc{dir: dir, socket: filepath.Join(sockDir, "s"), logs: newSyncBuffer(), done: make(chan error, 1)}
	d.cmd = exec.Command(bin, "daemon", "--data-dir", dir, "--socket", d.socket, "--listen-addr", "127.0.0.1:0",
		"--secrets-dir", filepath.Join(sockDir, "secrets"))
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("---- daemon %s ----\n%s", dir, d.logs.String())
		}
	})
	waitForSocket(t, d.socket, d.done)
	return d
}

// stop sends SIGTERM and waits for the process to exit.
func (d *daemonProc) stop(t *testing.T) {
	if d.cmd.ProcessState != nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(waitTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("daemon %s did not stop on SIGTERM", d.dir)
	}
}

func (d *daemonProc) cli(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	return binRun(t, bin, stdin, append(args, "--socket", d.socket)...)
}

func waitStatus(t *testing.T, socket, what string, cond func(*api.Status) bool) *api.Status {
	t.Helper()
	cl := api.NewUnixClient(socket)
	defer cl.Close()
	var st *api.Status
	testutil.Eventually(t, waitTimeout, func() (bool, string) {
		s, err := cl.Status(t.Context())
		st = s
		return err == nil && cond(s), fmt.Sprintf("waiting for %s; last status %+v, %v", what, s, err)
	})
	return st
}

// leaks names the encoding of needle that b holds, if any.
func leaks(b []byte, needle string) string {
	for name, enc := range map[string]string{
		"raw":    needle,
		"hex":    hex.EncodeToString([]byte(needle)),
		"base64": base64.StdEncoding.EncodeToString([]byte(needle)),
	} {
		if len(enc) > 24 {
			enc = enc[4:24] // alignment-free middle part
		}
		if bytes.Contains(b, []byte(enc)) {
			return name
		}
	}
	return ""
}

func mustOK(t *testing.T, what string, r result) {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("%s: exit %d, stdout %q, stderr %q", what, r.code, r.stdout, r.stderr)
	}
}

func TestBackupEndToEnd(t *testing.T) {
	bin := buildHoldfast(t)
	dirA := t.TempDir()
	a := startDaemonProc(t, bin, dirA)
	mustOK(t, "init", a.cli(t, bin, "", "init"))
	mustOK(t, "secret create", a.cli(t, bin, e2eCanary, "secret", "create", "db", "-", "--label", "env=prod"))
	tok := a.cli(t, bin, "", "join-token", "-q", "manager")
	mustOK(t, "join-token", tok)
	managerToken := strings.TrimSpace(tok.stdout)

	work := t.TempDir()
	file := filepath.Join(work, "cluster.hfb")
	passFile := filepath.Join(work, "pass")
	os.WriteFile(passFile, []byte("correct horse battery staple\n"), 0o600)

	r := a.cli(t, bin, "", "snapshot", "save", file)
	if r.code != exitError {
		t.Errorf("save without a passphrase, autolock off: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "--passphrase-file")
	r = a.cli(t, bin, "", "snapshot", "save", file, "--passphrase-file", passFile)
	mustOK(t, "snapshot save", r)
	if !strings.Contains(r.stdout, "saved to "+file) || !strings.Contains(r.stderr, "saving backup") {
		t.Errorf("snapshot save printed %q, progress %q", r.stdout, r.stderr)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, fi.Mode())
	}

	// rafttool refuses the running node's dir.
	r = binRun(t, bin, "", "rafttool", "dump", "--data-dir", dirA)
	if r.code != exitError {
		t.Errorf("rafttool dump on a running node: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "running on this data dir")

	a.stop(t)
	// Without autolock no key is needed; secrets are redacted.
	r = binRun(t, bin, "", "rafttool", "dump", "--data-dir", dirA)
	mustOK(t, "rafttool dump", r)
	if !strings.Contains(r.stdout, `"command":"secret.create"`) || !strings.Contains(r.stdout, `"<redacted>"`) || leaks([]byte(r.stdout), e2eCanary) != "" {
		t.Errorf("rafttool dump: want a redacted secret.create; got\n%s", r.stdout)
	}
	for i, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("dump line %d is not JSON: %v\n%s", i+1, err, line)
		}
	}
	revealed := binRun(t, bin, "", "rafttool", "dump", "--reveal", "--data-dir", dirA)
	mustOK(t, "rafttool dump --reveal", revealed)
	if leaks([]byte(revealed.stdout), e2eCanary) == "" {
		t.Errorf("rafttool dump --reveal does not show the secret's data")
	}
	// Every secret the cluster holds, as canaries for the backup file.
	canaries := []string{e2eCanary, managerToken[len(managerToken)-30:]}
	if m := regexp.MustCompile(`"root_key_pem":"([^"]+)"`).FindStringSubmatch(revealed.stdout); m != nil {
		der, _ := base64.StdEncoding.DecodeString(m[1])
		canaries = append(canaries, string(der[80:140])) // inside the PEM text
	} else {
		t.Fatal("rafttool dump --reveal shows no root_key_pem")
	}
	b, _ := os.ReadFile(file)
	for _, c := range canaries {
		if enc := leaks(b, c); enc != "" {
			t.Errorf("the backup file holds a secret (%s)", enc)
		}
	}

	// Wipe everything.
	if err := os.RemoveAll(dirA); err != nil {
		t.Fatal(err)
	}

	// A flipped byte is refused before anything is restored.
	bad := filepath.Join(work, "bad.hfb")
	b[len(b)-100] ^= 0x01
	os.WriteFile(bad, b, 0o600)
	target := t.TempDir()
	r = binRun(t, bin, "", "snapshot", "restore", bad, "--data-dir", target, "--passphrase-file", passFile)
	if r.code != exitError {
		t.Errorf("restore of a damaged backup: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "integrity")
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("a refused restore wrote %d entries into the target", len(ents))
	}
	r = binRun(t, bin, "", "snapshot", "restore", file, "--data-dir", target)
	if r.code != exitError {
		t.Errorf("restore without the passphrase: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "--passphrase-file")

	r = binRun(t, bin, "", "snapshot", "restore", file, "--data-dir", target, "--passphrase-file", passFile)
	mustOK(t, "snapshot restore", r)
	if !strings.Contains(r.stdout, "1 secrets") || !strings.Contains(r.stderr, "verifying backup") {
		t.Errorf("snapshot restore printed %q, progress %q", r.stdout, r.stderr)
	}
	b2 := startDaemonProc(t, bin, target)
	st := waitStatus(t, b2.socket, "the restored node to lead", func(s *api.Status) bool { return s.IsLeader })
	if len(st.Managers) != 1 {
		t.Errorf("restored cluster managers = %+v; want this node alone", st.Managers)
	}
	r = b2.cli(t, bin, "", "secret", "ls", "--format", "json")
	mustOK(t, "secret ls", r)
	if !strings.Contains(r.stdout, `"name": "db"`) || !strings.Contains(r.stdout, `"env": "prod"`) {
		t.Errorf("restored secrets: %s", r.stdout)
	}

	// Another manager joins the restored cluster.
	c := startDaemonProc(t, bin, t.TempDir())
	mustOK(t, "join", c.cli(t, bin, "", "join", "--token", managerToken, st.Addr))
	waitStatus(t, b2.socket, "two managers", func(s *api.Status) bool { return len(s.Managers) == 2 })
}

func TestBackupAndRafttoolAutolockEndToEnd(t *testing.T) {
	bin := buildHoldfast(t)
	dir := t.TempDir()
	a := startDaemonProc(t, bin, dir)
	r := a.cli(t, bin, "", "init", "--autolock")
	mustOK(t, "init --autolock", r)
	key := regexp.MustCompile(`HFKEY-1-[a-z2-7]+`).FindString(r.stdout)
	if key == "" {
		t.Fatalf("init --autolock printed no key:\n%s", r.stdout)
	}
	mustOK(t, "secret create", a.cli(t, bin, e2eCanary, "secret", "create", "db", "-"))
	file := filepath.Join(t.TempDir(), "b.hfb")
	mustOK(t, "snapshot save", a.cli(t, bin, "", "snapshot", "save", file))
	a.stop(t)

	wrong := "HFKEY-1-" + strings.Repeat("a", 58)
	r = binRun(t, bin, wrong, "rafttool", "dump", "--data-dir", dir)
	if r.code != exitError {
		t.Errorf("rafttool with a malformed key: exit %d; want 1", r.code)
	}
	r = binRun(t, bin, newUnlockKey(t), "rafttool", "dump", "--data-dir", dir)
	if r.code != exitError {
		t.Errorf("rafttool with a wrong key: exit %d; want 1", r.code)
	}
	checkErrorLine(t, r, "invalid unlock key")
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
	r = binRun(t, bin, "", "rafttool", "dump", "--data-dir", dir, "--key-file", keyFile)
	mustOK(t, "rafttool dump --key-file", r)
	if !strings.Contains(r.stdout, `"command":"autolock.set"`) && !strings.Contains(r.stdout, `"command":"cluster.init"`) || leaks([]byte(r.stdout), e2eCanary) != "" || strings.Contains(r.stdout, key) {
		t.Errorf("rafttool dump of an autolocked node:\n%s", r.stdout)
	}
	out := filepath.Join(t.TempDir(), "plain")
	r = binRun(t, bin, key, "rafttool", "decrypt", "--out", out, "--data-dir", dir)
	mustOK(t, "rafttool decrypt", r)
	if !strings.Contains(r.stderr, "PLAINTEXT") {
		t.Errorf("decrypt gave no plaintext warning: %q", r.stderr)
	}
	lb, err := os.ReadFile(filepath.Join(out, "log.jsonl"))
	if fi, _ := os.Stat(filepath.Join(out, "log.jsonl")); err != nil || fi.Mode().Perm() != 0o600 || leaks(lb, e2eCanary) == "" {
		t.Errorf("decrypted log: %v; want a 0600 file holding the secret", err)
	}

	// The backup restores with the unlock key on stdin; the node starts locked.
	target := filepath.Join(t.TempDir(), "restored")
	r = binRun(t, bin, newUnlockKey(t), "snapshot", "restore", file, "--data-dir", target)
	checkErrorLine(t, r, "invalid unlock key")
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused restore created %s", target)
	}
	mustOK(t, "snapshot restore", binRun(t, bin, key, "snapshot", "restore", file, "--data-dir", target))
	b := startDaemonProc(t, bin, target)
	waitStatus(t, b.socket, "locked", func(s *api.Status) bool { return s.State == api.StateLocked })
	mustOK(t, "unlock", b.cli(t, bin, key, "unlock"))
	waitStatus(t, b.socket, "the restored node to lead", func(s *api.Status) bool { return s.IsLeader })
	r = b.cli(t, bin, "", "secret", "ls")
	mustOK(t, "secret ls", r)
	if !strings.Contains(r.stdout, "db") {
		t.Errorf("restored secrets: %q", r.stdout)
	}
}
