package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryHelpSuggestionsAndCompletion drives the built binary: help
// for a group both ways, a typo's suggestion and exit status 2,
// --version, and a bash completion script that bash accepts.
func TestBinaryHelpSuggestionsAndCompletion(t *testing.T) {
	bin := buildHoldfast(t)
	for _, args := range [][]string{{"help", "secret"}, {"secret", "--help"}} {
		r := binRun(t, bin, "", args...)
		if r.code != exitOK || !strings.HasPrefix(r.stdout, "Usage: holdfast secret COMMAND") || !strings.Contains(r.stdout, "  revoke ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want the secret group's help", args, r.code, r.stdout, r.stderr)
		}
	}
	r := binRun(t, bin, "", "secret", "craete", "x", "-")
	if r.code != exitUsage || !strings.Contains(r.stderr, "did you mean 'secret create'?") {
		t.Errorf("secret craete: exit %d, stderr %q; want exit 2 and a suggestion", r.code, r.stderr)
	}
	if v, ver := binRun(t, bin, "", "version"), binRun(t, bin, "", "--version"); ver.code != exitOK || ver.stdout != v.stdout {
		t.Errorf("--version: exit %d, stdout %q; want %q", ver.code, ver.stdout, v.stdout)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here")
	}
	r = binRun(t, bin, "", "completion", "bash")
	script := filepath.Join(t.TempDir(), "holdfast.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); r.code != exitOK || err != nil {
		t.Errorf("completion bash: exit %d; bash -n: %v\n%s", r.code, err, out)
	}
	// The script's completion function asks the binary; ask it the same.
	r = binRun(t, bin, "", "__complete", "secret", "l")
	if r.code != exitOK || !strings.Contains(r.stdout, "ls") {
		t.Errorf("__complete secret l: exit %d, stdout %q", r.code, r.stdout)
	}
}
