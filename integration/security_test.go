package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDaemonKeepsKeysOutOfCoreDumps: the real daemon runs with a core
// size limit of 0, so a crash writes no core holding its keys.
func TestDaemonKeepsKeysOutOfCoreDumps(t *testing.T) {
	d := newDaemon(t, "d0")
	limits, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "limits"))
	if err != nil {
		t.Skipf("no /proc limits here: %v", err)
	}
	m := regexp.MustCompile(`(?m)^Max core file size\s+(\S+)\s+(\S+)`).FindStringSubmatch(string(limits))
	if m == nil {
		t.Fatalf("no core limit in /proc/PID/limits:\n%s", limits)
	}
	if m[1] != "0" || m[2] != "0" {
		t.Fatalf("core limit soft %s, hard %s; want 0 and 0", m[1], m[2])
	}
	t.Logf("daemon %d: Max core file size %s %s", d.cmd.Process.Pid, m[1], m[2])
}

// TestDaemonRefusesSharedSocketDir: a control socket in a directory
// others may write to is refused at start, with a clear error.
func TestDaemonRefusesSharedSocketDir(t *testing.T) {
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "daemon", "--data-dir", t.TempDir(), "--socket", filepath.Join(shared, "s"), "--listen-addr", freePort(t))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("daemon started with its socket in a world-writable directory:\n%s", out)
	}
	if !strings.Contains(string(out), "writable by others") {
		t.Fatalf("daemon's error does not say why:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(shared, "s")); err == nil {
		t.Fatal("the socket was created anyway")
	}
}
