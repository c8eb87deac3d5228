package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// names lists dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func wantFile(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s holds %q; want %q", path, got, data)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != mode {
		t.Errorf("%s has mode %v; want %v", path, fi.Mode(), mode)
	}
}

func TestWriteFileReplaces(t *testing.T) {
	for _, mode := range []fs.FileMode{0o600, 0o400, 0o644} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, []byte("old"), 0o666); err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(p, []byte("new"), mode); err != nil {
				t.Fatalf("WriteFile: %v", err)
			}
			wantFile(t, p, []byte("new"), mode)
			if got := names(t, dir); len(got) != 1 {
				t.Errorf("directory holds %v; want only f", got)
			}
		})
	}
}

// A failing writer leaves the old file as it was and no temporary file.
func TestWriteErrorLeavesOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, 0o600, Options{BeforeRename: func() { t.Error("BeforeRename ran after a failed write") }}, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write: %v; want the writer's error", err)
	}
	wantFile(t, p, []byte("old"), 0o600)
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v; want only f", got)
	}
}

// Just before the rename, the new content is whole, with its mode, under
// a temporary name the caller can recognise; the destination is still old.
func TestBeforeRenameSeesTemp(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, prefix string
	}{
		{"default", "", ".f.tmp-"},
		{"pattern", ".holdfast-tmp-*", ".holdfast-tmp-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			ran := false
			before := func() {
				ran = true
				wantFile(t, p, []byte("old"), 0o600)
				var temps []string
				for _, n := range names(t, dir) {
					if n != "f" {
						temps = append(temps, n)
					}
				}
				if len(temps) != 1 || !strings.HasPrefix(temps[0], tc.prefix) {
					t.Fatalf("temporary files %v; want one starting %q", temps, tc.prefix)
				}
				wantFile(t, filepath.Join(dir, temps[0]), []byte("new"), 0o400)
			}
			err := Write(p, 0o400, Options{TempPattern: tc.pattern, BeforeRename: before}, func(w io.Writer) error {
				_, err := w.Write([]byte("new"))
				return err
			})
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if !ran {
				t.Fatal("BeforeRename did not run")
			}
			wantFile(t, p, []byte("new"), 0o400)
		})
	}
	if got, want := TempPrefix("/a/b/keys"), ".keys.tmp-"; got != want {
		t.Errorf("TempPrefix = %q; want %q", got, want)
	}
}

func TestWriteMissingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "f")
	if err := WriteFile(p, []byte("x"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("WriteFile into a missing directory: %v; want ErrNotExist", err)
	}
}
