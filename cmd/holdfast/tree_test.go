package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpForEveryGroupAndCommand: 'holdfast help X', 'holdfast X --help'
// and 'holdfast X -h' print X's own help on stdout, exit 0, for every group
// and every command.
func TestHelpForEveryGroupAndCommand(t *testing.T) {
	var names []string
	for _, g := range groupCommands {
		names = append(names, g.name)
	}
	for _, cm := range commands() {
		names = append(names, cm.name)
	}
	for _, name := range names {
		words := strings.Fields(name)
		want := "Usage: holdfast " + name + " "
		for _, args := range [][]string{
			append([]string{"help"}, words...),
			append(words, "--help"),
			append(words, "-h"),
		} {
			r := runCLI(t, args...)
			if r.code != exitOK || r.stderr != "" || !strings.HasPrefix(r.stdout, want) {
				t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit 0 and a usage starting %q", args, r.code, r.stderr, r.stdout, want)
			}
		}
	}
	r := runCLI(t, "help", "secret")
	for _, sub := range []string{"create", "ls", "inspect", "rm", "update", "grant", "revoke", "also: list", "also: remove"} {
		if !strings.Contains(r.stdout, sub) {
			t.Errorf("'holdfast help secret' does not list %q:\n%s", sub, r.stdout)
		}
	}
	r = runCLI(t, "help", "completion")
	if r.code != exitOK || !strings.Contains(r.stdout, "bash") {
		t.Errorf("help completion: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestVersionFlag: --version prints what 'holdfast version' prints.
func TestVersionFlag(t *testing.T) {
	want := runCLI(t, "version")
	got := runCLI(t, "--version")
	if got.code != exitOK || got.stdout != want.stdout || got.stdout == "" {
		t.Errorf("--version: exit %d, stdout %q; want %q", got.code, got.stdout, want.stdout)
	}
}

// TestAliases: ls/list and rm/remove name the same commands.
func TestAliases(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"secret", "list"}, {"node", "list"}, {"keys", "list"}, {"secret", "remove", "x"}, {"node", "remove", "x"}} {
		r := runCLI(t, append(args, "--socket", missing)...)
		if r.code != exitError || !strings.Contains(r.stderr, "cannot reach the holdfast daemon") {
			t.Errorf("%q: exit %d, stderr %q; want the command to run (and find no daemon)", args, r.code, r.stderr)
		}
	}
}

// TestTypoSuggestions: a near miss gets a "did you mean", exit 2.
func TestTypoSuggestions(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"stauts"}, "unknown command 'stauts'; did you mean 'status'?"},
		{[]string{"secert", "ls"}, "did you mean 'secret'?"},
		{[]string{"secret", "lst"}, "unknown command 'secret lst'; the 'secret' commands are create, ls, inspect, rm, update, grant, revoke; did you mean 'secret ls'?"},
		{[]string{"node", "promot", "x"}, "did you mean 'node promote'?"},
		{[]string{"help", "secert"}, "did you mean 'secret'?"},
	}
	for _, tt := range tests {
		r := runCLI(t, tt.args...)
		if r.code != exitUsage {
			t.Errorf("%q: exit %d; want %d", tt.args, r.code, exitUsage)
		}
		checkErrorLine(t, r, tt.want)
	}
}

// TestCompletionScripts: 'completion bash' prints a script bash accepts
// and that defines the completion; zsh and fish print theirs; an unknown
// shell is a usage error.
func TestCompletionScripts(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here")
	}
	r := runCLI(t, "completion", "bash")
	if r.code != exitOK || !strings.Contains(r.stdout, "holdfast") {
		t.Fatalf("completion bash: exit %d, stderr %q", r.code, r.stderr)
	}
	script := filepath.Join(t.TempDir(), "holdfast.bash")
	if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n rejects the completion script: %v\n%s", err, out)
	}
	out, err := exec.Command(bash, "-c", "source "+script+" && complete -p holdfast").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "holdfast") {
		t.Fatalf("sourcing the script defines no completion for holdfast: %v\n%s", err, out)
	}
	for _, sh := range []string{"zsh", "fish"} {
		if r := runCLI(t, "completion", sh); r.code != exitOK || !strings.Contains(r.stdout, "holdfast") {
			t.Errorf("completion %s: exit %d, stderr %q", sh, r.code, r.stderr)
		}
	}
	r = runCLI(t, "completion", "tcsh")
	if r.code != exitUsage {
		t.Errorf("completion tcsh: exit %d; want %d", r.code, exitUsage)
	}
	// The completion engine itself completes commands and flags.
	r = runCLI(t, "__complete", "secret", "")
	if r.code != exitOK || !strings.Contains(r.stdout, "create") || !strings.Contains(r.stdout, "inspect") {
		t.Errorf("__complete secret: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, "__complete", "node", "ls", "--f")
	if !strings.Contains(r.stdout, "--format") {
		t.Errorf("__complete node ls --f: stdout %q", r.stdout)
	}
}
