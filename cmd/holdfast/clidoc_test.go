package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var updateReference = flag.Bool("update", false, "rewrite docs/CLI.md from the command tree")

const referencePath = "../../docs/CLI.md"

// TestCLIReference fails when docs/CLI.md is not what the command tree
// generates: a command, flag or output field changed without the doc.
// 'go generate ./cmd/holdfast' (this test with -update) rewrites it.
func TestCLIReference(t *testing.T) {
	var buf bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &buf, stderr: &buf, getenv: func(string) string { return "" }}
	var want bytes.Buffer
	if err := c.newTree(t.Context()).writeReference(&want); err != nil {
		t.Fatal(err)
	}
	if *updateReference {
		if err := os.WriteFile(referencePath, want.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v; generate it with 'go generate ./cmd/holdfast'", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(want.String(), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("docs/CLI.md is not current (line %d is %q; the command tree gives %q); run 'go generate ./cmd/holdfast'", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("docs/CLI.md is not current (%d lines; the command tree gives %d); run 'go generate ./cmd/holdfast'", len(gl), len(wl))
	}
	for _, want := range []string{"## holdfast secret ls", "## holdfast node", "## holdfast completion bash", "--filter KEY=VALUE", "### node ls", "`cert_expires_at`: time (RFC 3339)"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("docs/CLI.md has no %q", want)
		}
	}
}

// TestCLIReferenceStaysInTheRepo: docs/CLI.md links only to its own
// headings or to files that exist in the repository, and names nothing
// outside it.
func TestCLIReferenceStaysInTheRepo(t *testing.T) {
	b, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`\.\./shar` + `ed|/wor` + `k/|https?://`).Find(b); m != nil {
		t.Errorf("docs/CLI.md points outside the repository: %q", m)
	}
	for _, m := range regexp.MustCompile(`\]\(([^)]*)\)`).FindAllSubmatch(b, -1) {
		target := string(m[1])
		if strings.HasPrefix(target, "#") {
			continue
		}
		path := filepath.Join(filepath.Dir(referencePath), strings.SplitN(target, "#", 2)[0])
		rel, err := filepath.Rel("../..", path)
		if _, statErr := os.Stat(path); statErr != nil || err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("docs/CLI.md links to %q, which is not a file in the repository", target)
		}
	}
}
