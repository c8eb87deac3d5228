package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// errTB records Errorf.
type errTB struct {
	testing.TB
	msg string
}

func (e *errTB) Helper()                           {}
func (e *errTB) Errorf(format string, args ...any) { e.msg = format }

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.golden")
	Golden(t, path, []byte("one\n"), true)
	if b, err := os.ReadFile(path); err != nil || string(b) != "one\n" {
		t.Fatalf("-update wrote %q, %v; want %q", b, err, "one\n")
	}
	Golden(t, path, []byte("one\n"), false)
	e := &errTB{}
	Golden(e, path, []byte("two\n"), false)
	if !strings.Contains(e.msg, "differs") {
		t.Errorf("a different output was not reported (Errorf %q)", e.msg)
	}
}
