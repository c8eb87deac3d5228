// Package docs holds no code: its tests run the examples of the documents
// in this directory, and check that the repository's documents stand
// alone.
package docs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
)

// codeBlocks returns the fenced code blocks of a Markdown document whose
// info string is one of langs, each as its lines.
func codeBlocks(t *testing.T, doc string, langs ...string) [][]string {
	t.Helper()
	var out [][]string
	var cur []string
	in := false
	keep := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				if keep {
					out = append(out, cur)
				}
				in, cur = false, nil
				continue
			}
			in = true
			lang := strings.TrimSpace(strings.TrimPrefix(line, "```"))
			keep = false
			for _, l := range langs {
				keep = keep || lang == l
			}
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return out
}

// logicalLines joins lines continued with a trailing backslash.
func logicalLines(lines []string) []string {
	var out []string
	var cur string
	for _, l := range lines {
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unit is what the test needs of a systemd service: its [Service]
// Environment= assignments, in order, and its ExecStart= command line.
type unit struct {
	env       []string
	execStart string
	creds     []string // LoadCredentialEncrypted= values
}

// apply reads [Service] settings (one logical line each) into u, as a unit
// file or a drop-in does: an empty ExecStart= clears the command.
func (u *unit) apply(lines []string) {
	section := ""
	for _, l := range logicalLines(lines) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			section = l
			continue
		}
		if section != "[Service]" || l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		key, val, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		switch key {
		case "Environment":
			u.env = append(u.env, val)
		case "ExecStart":
			u.execStart = val
		case "LoadCredentialEncrypted":
			u.creds = append(u.creds, val)
		}
	}
}

// TestSystemdCredsExampleKeepsTheCommandWhole runs the autolock example of
// OPERATIONS.md ("Autolock and restarts"): contrib/holdfast.service with
// the drop-in the document gives, started as systemd would, must hand the
// daemon an --unlock-key-command whose command (it has a space) prints the
// unlock key from the credential, and no stray argument.
//
// bash stands in for systemd's command line: for what the example may use
// (words in double quotes, "\" at a line's end, $VAR split on whitespace
// without reading quotes in its value, ${VAR} of a value without spaces,
// Environment= values in single or double quotes) the two split a line
// into the same words. The test refuses anything else. %d, systemd's
// credentials directory, is replaced by a temporary one.
func TestSystemdCredsExampleKeepsTheCommandWhole(t *testing.T) {
	ops := readDoc(t, "OPERATIONS.md")
	var dropIn []string
	for _, b := range codeBlocks(t, ops, "ini", "sh") {
		if !strings.Contains(strings.Join(b, "\n"), "LoadCredentialEncrypted=") {
			continue
		}
		for _, l := range b { // a drop-in may be shown as comments after `systemctl edit`
			if s, ok := strings.CutPrefix(l, "# "); ok && (strings.HasPrefix(s, "[") || strings.Contains(s, "=") || strings.HasPrefix(s, "    ")) {
				l = s
			}
			dropIn = append(dropIn, l)
		}
		break
	}
	if dropIn == nil {
		t.Fatal("OPERATIONS.md has no drop-in with LoadCredentialEncrypted=")
	}
	var u unit
	u.apply(strings.Split(readDoc(t, "../contrib/holdfast.service"), "\n"))
	u.apply(dropIn)
	if len(u.creds) != 1 {
		t.Fatalf("drop-in loads %d credentials; want 1", len(u.creds))
	}
	credName, _, _ := strings.Cut(u.creds[0], ":")
	if !strings.Contains(ops, "--name="+credName+" ") {
		t.Errorf("the systemd-creds encrypt command does not name the credential %q", credName)
	}

	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	const key = "HFKEY-1-TESTKEYNOTREAL"
	if err := os.WriteFile(filepath.Join(creds, credName), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The stand-in daemon writes its arguments, NUL-terminated.
	argsFile := filepath.Join(dir, "args")
	standIn := filepath.Join(dir, "holdfast")
	if err := os.WriteFile(standIn, []byte("#!/bin/bash\nprintf '%s\\0' \"$@\" > \""+argsFile+"\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	cmdLine, ok := strings.CutPrefix(strings.TrimSpace(u.execStart), "/usr/local/bin/holdfast ")
	if !ok {
		t.Fatalf("ExecStart %q does not run /usr/local/bin/holdfast", u.execStart)
	}
	if strings.ContainsAny(cmdLine, "'`;&|<>") || strings.Contains(cmdLine, "$$") || strings.Contains(cmdLine, "\\") {
		t.Fatalf("ExecStart %q uses quoting this test cannot model with bash", cmdLine)
	}
	cmdLine = strings.ReplaceAll(cmdLine, "%d", creds)
	var script strings.Builder
	script.WriteString("set -eu\nHOLDFAST_ADVERTISE_ADDR=10.0.0.1:4242\n") // /etc/default/holdfast, as the install step writes it
	for _, e := range u.env {
		name, _, _ := strings.Cut(e, "=")
		if !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(name) {
			t.Fatalf("Environment=%s: not one assignment this test can model", e)
		}
		script.WriteString(e + "\n")
	}
	script.WriteString("\"$STANDIN\" " + cmdLine + "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, "bash", "-c", script.String())
	run.Env = append(os.Environ(), "STANDIN="+standIn, "CREDENTIALS_DIRECTORY="+creds)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("running ExecStart: %v\n%s\nscript:\n%s", err, out, script.String())
	}
	raw, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")

	// The daemon's flags all take a value: --flag=value or --flag value.
	if len(args) == 0 || args[0] != "daemon" {
		t.Fatalf("arguments %q; want daemon first", args)
	}
	flags := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("stray argument %q: the daemon would refuse it (all arguments: %q)", a, args)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasVal {
			if i+1 == len(args) {
				t.Errorf("flag %q has no value", a)
				break
			}
			i++
			val = args[i]
		}
		flags[name] = val
	}
	unlock, ok := flags["unlock-key-command"]
	if !ok {
		t.Fatalf("no --unlock-key-command in %q", args)
	}
	if !strings.Contains(unlock, " ") {
		t.Errorf("unlock command %q has no space: the example no longer shows one surviving", unlock)
	}
	// As manager/autolock.go runs it.
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", unlock)
	sh.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+creds)
	out, err := sh.Output()
	if err != nil || strings.TrimSpace(string(out)) != key {
		t.Errorf("unlock command %q printed %q (%v); want the key %q", unlock, out, err, key)
	}
	if flags["advertise-addr"] != "10.0.0.1:4242" || flags["data-dir"] != "/var/lib/holdfast" {
		t.Errorf("the drop-in lost the unit's flags: %q", args)
	}
}

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildHoldfast builds the binary once for the package's tests.
func buildHoldfast(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "holdfast-docs-"); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "holdfast"), "../cmd/holdfast").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "holdfast")
}

// TestOperationsCommandsParse runs every holdfast command line of
// OPERATIONS.md's shell examples as written, with bash, against a control
// socket that does not exist: the CLI must accept each (no usage error,
// exit 2) and fail only for want of a daemon (exit 1), or succeed.
func TestOperationsCommandsParse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHoldfast(t)
	dir := t.TempDir()
	n := 0
	for _, b := range codeBlocks(t, readDoc(t, "OPERATIONS.md"), "sh") {
		for _, line := range logicalLines(b) {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "holdfast ") || strings.ContainsAny(line, "|;&") ||
				strings.HasPrefix(line, "holdfast daemon") {
				continue // other programs, pipes, or a daemon that would start
			}
			n++
			cmd := exec.Command("bash", "-c", line)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"),
				"HOLDFAST_SOCKET="+filepath.Join(dir, "no-daemon.sock"), "HOLDFAST_DATA_DIR="+filepath.Join(dir, "no-data-dir"))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
			case errors.As(err, &ee) && ee.ExitCode() == 1:
				if !strings.HasPrefix(stderr.String(), "holdfast: ") {
					t.Errorf("%s: exit 1 with %q; want one 'holdfast: ' error line", line, stderr.String())
				}
			default:
				t.Errorf("%s: %v, stderr %q; want it accepted (exit 0, or 1 for the missing daemon)", line, err, stderr.String())
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d holdfast commands in OPERATIONS.md; the extraction is broken", n)
	}
}

// outside are references to files that are not in the repository: the
// design and CLI documents of the project's working area. Spelled in
// pieces so that this file does not hold them.
var outside = []string{"../" + "shared", "/" + "work/", "shared/" + "DESIGN.md", "shared/" + "CLI.md", "shared/" + "STYLE.md"}

// mdLink matches a Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsStayInTheRepo: no file of the repository refers to documents
// outside it, and every relative link of its Markdown documents leads to
// a file in it.
func TestDocsStayInTheRepo(t *testing.T) {
	root := ".."
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md", ".go", ".yaml", ".yml", ".service", ".sh", ".txt":
		default:
			if filepath.Base(path) != "LICENSE" && filepath.Dir(path) != filepath.Join(root, ".ci") {
				return nil
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for ln := 1; sc.Scan(); ln++ {
			line := sc.Text()
			for _, o := range outside {
				if strings.Contains(line, o) {
					t.Errorf("%s:%d refers to %q, outside the repository: %s", path, ln, o, strings.TrimSpace(line))
				}
			}
			if filepath.Ext(path) != ".md" {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				target, anchor, _ := strings.Cut(target, "#")
				p := filepath.Join(filepath.Dir(path), target)
				if target == "" {
					p = path
				}
				if anchor != "" && strings.HasSuffix(p, ".md") {
					if doc, err := os.ReadFile(p); err == nil && !slices.Contains(headingAnchors(string(doc)), anchor) {
						t.Errorf("%s:%d links %s: %s has no heading with that anchor", path, ln, m[1], p)
					}
				}
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s:%d links %s, which does not exist", path, ln, m[1])
				}
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// headingAnchors returns the anchors GitHub gives a Markdown document's
// headings: lower case, spaces to hyphens, other punctuation dropped, and
// -1, -2 … after repeats. Lines in code blocks are not headings.
func headingAnchors(doc string) []string {
	var out []string
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out = append(out, a)
	}
	return out
}
