//go:build unix

package secrets

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func sec(t *testing.T, name, data string) *Secret {
	t.Helper()
	s, err := New("id-"+name, name, []byte(data), nil, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func checkFile(t *testing.T, p, want string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o400 {
		t.Errorf("%s: got mode %v; want a regular file with mode 0400", p, fi.Mode())
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s: got %q; want %q", p, got, want)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func mustSync(t *testing.T, d Dir, granted ...*Secret) (written, removed []string) {
	t.Helper()
	w, r, err := d.Sync(granted)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return w, r
}

func eq(got, want []string) bool {
	return len(got) == 0 && len(want) == 0 || reflect.DeepEqual(got, want)
}

func TestDirSync(t *testing.T) {
	d := Dir{Path: filepath.Join(t.TempDir(), "run", "secrets")}
	big := strings.Repeat("\x00\xff", MaxSize/2) // binary, exactly 500 KiB
	a, b, c := sec(t, "a", "alpha\n"), sec(t, "b.key", big), sec(t, "c", "\x00")

	// First sync creates the directory and writes everything.
	w, r := mustSync(t, d, c, a, b)
	if !eq(w, []string{"a", "b.key", "c"}) || !eq(r, nil) {
		t.Fatalf("first sync wrote %v removed %v; want [a b.key c] and nothing", w, r)
	}
	fi, err := os.Stat(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v; want 0700", fi.Mode().Perm())
	}
	checkFile(t, filepath.Join(d.Path, "a"), "alpha\n")
	checkFile(t, filepath.Join(d.Path, "b.key"), big)
	checkFile(t, filepath.Join(d.Path, "c"), "\x00")
	inoA := inode(t, filepath.Join(d.Path, "a"))

	// Again: nothing to do.
	if w, r := mustSync(t, d, a, b, c); !eq(w, nil) || !eq(r, nil) {
		t.Fatalf("second sync wrote %v removed %v; want nothing", w, r)
	}
	if inode(t, filepath.Join(d.Path, "a")) != inoA {
		t.Errorf("unchanged secret a was rewritten")
	}

	// Changed content (same size) is replaced; a file whose mode drifted
	// is rewritten.
	a2 := sec(t, "a", "ALPHA\n")
	if err := os.Chmod(filepath.Join(d.Path, "c"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w, r := mustSync(t, d, a2, b, c); !eq(w, []string{"a", "c"}) || !eq(r, nil) {
		t.Fatalf("sync after change wrote %v removed %v; want [a c]", w, r)
	}
	checkFile(t, filepath.Join(d.Path, "a"), "ALPHA\n")
	checkFile(t, filepath.Join(d.Path, "c"), "\x00")

	// A revoked secret's file goes.
	if w, r := mustSync(t, d, a2, c); !eq(w, nil) || !eq(r, []string{"b.key"}) {
		t.Fatalf("sync after revoke wrote %v removed %v; want removed [b.key]", w, r)
	}
	if _, err := os.Lstat(filepath.Join(d.Path, "b.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b.key still exists: %v", err)
	}
	// Nothing granted: everything goes, the directory stays.
	if w, r := mustSync(t, d); !eq(w, nil) || !eq(r, []string{"a", "c"}) {
		t.Fatalf("sync of nothing wrote %v removed %v; want removed [a c]", w, r)
	}
	if got := names(t, d.Path); len(got) != 0 {
		t.Errorf("dir holds %v; want nothing", got)
	}
}

func TestDirSyncLeavesOthersAlone(t *testing.T) {
	root := t.TempDir()
	d := Dir{Path: filepath.Join(root, "secrets")}
	outside := filepath.Join(root, "outside")
	if err := os.WriteFile(outside, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Files with names that are not secret names, a directory and symlinks
	// with names that are, and a stale temporary file of an earlier Sync.
	must(os.WriteFile(filepath.Join(d.Path, ".hidden"), []byte("x"), 0o600))
	must(os.WriteFile(filepath.Join(d.Path, "has space"), []byte("x"), 0o600))
	must(os.WriteFile(filepath.Join(d.Path, "-dash"), []byte("x"), 0o600))
	must(os.Mkdir(filepath.Join(d.Path, "subdir"), 0o700))
	must(os.WriteFile(filepath.Join(d.Path, "subdir", "inner"), []byte("x"), 0o600))
	must(os.Symlink(outside, filepath.Join(d.Path, "link")))
	must(os.Symlink(outside, filepath.Join(d.Path, "granted-but-link")))
	must(os.Symlink(filepath.Join(root, "dangling"), filepath.Join(d.Path, "dangling")))
	must(os.WriteFile(filepath.Join(d.Path, tmpPrefix+"123"), []byte("stale"), 0o400))
	must(os.WriteFile(filepath.Join(d.Path, "old-secret"), []byte("x"), 0o400))

	ok := sec(t, "ok", "fine")
	w, r, err := d.Sync([]*Secret{ok, sec(t, "granted-but-link", "evil")})
	if err == nil || !strings.Contains(err.Error(), "granted-but-link") {
		t.Errorf("got error %v; want one about granted-but-link", err)
	}
	if strings.Contains(err.Error(), "evil") {
		t.Errorf("error quotes secret data: %v", err)
	}
	if !eq(w, []string{"ok"}) || !eq(r, []string{"old-secret"}) {
		t.Errorf("wrote %v removed %v; want [ok] and [old-secret]", w, r)
	}
	want := []string{"-dash", ".hidden", "dangling", "granted-but-link", "has space", "link", "ok", "subdir"}
	if got := names(t, d.Path); !slices.Equal(got, want) {
		t.Errorf("dir holds %v; want %v", got, want)
	}
	if got, _ := os.ReadFile(outside); string(got) != "keep me" {
		t.Errorf("symlink target changed to %q", got)
	}
	for _, l := range []string{"link", "granted-but-link", "dangling"} {
		if fi, err := os.Lstat(filepath.Join(d.Path, l)); err != nil || fi.Mode().Type() != os.ModeSymlink {
			t.Errorf("%s is no longer a symlink: %v %v", l, fi, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "dangling")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dangling symlink was followed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.Path, "subdir", "inner")); err != nil {
		t.Errorf("subdir content touched: %v", err)
	}
}

func TestDirSyncBadInput(t *testing.T) {
	root := t.TempDir()
	d := Dir{Path: filepath.Join(root, "secrets")}
	evil := sec(t, "x", "data")
	evil.Name = "../escape"
	dup1, dup2 := sec(t, "dup", "one"), sec(t, "dup", "two")
	empty := sec(t, "empty", "x")
	empty.Data = nil
	good := sec(t, "good", "g")

	w, _, err := d.Sync([]*Secret{evil, nil, dup1, dup2, empty, good})
	for _, want := range []error{ErrInvalidName, ErrNameTaken, ErrEmpty} {
		if !errors.Is(err, want) {
			t.Errorf("got %v; want it to include %v", err, want)
		}
	}
	if !eq(w, []string{"dup", "good"}) {
		t.Errorf("wrote %v; want [dup good]", w)
	}
	checkFile(t, filepath.Join(d.Path, "dup"), "one")
	if _, err := os.Lstat(filepath.Join(root, "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written outside the directory: %v", err)
	}

	// A granted secret whose data is bad keeps its old file.
	if err := os.WriteFile(filepath.Join(d.Path, "empty"), []byte("old"), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, r, _ := d.Sync([]*Secret{empty, good}); !eq(r, []string{"dup"}) {
		t.Errorf("removed %v; want [dup] only", r)
	}
	checkFile(t, filepath.Join(d.Path, "empty"), "old")

	// Path is a file, or empty.
	f := filepath.Join(root, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (Dir{Path: f}).Sync([]*Secret{good}); err == nil {
		t.Errorf("Sync into a file succeeded")
	}
	if _, _, err := (Dir{}).Sync(nil); err == nil {
		t.Errorf("Sync with no path succeeded")
	}
}

func TestOnTmpfs(t *testing.T) {
	if _, err := OnTmpfs(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("OnTmpfs of a missing path: no error")
	}
	// /proc is never a tmpfs.
	if got, err := OnTmpfs("/proc"); err != nil || got {
		t.Errorf("OnTmpfs(/proc) = %v, %v; want false", got, err)
	}
	// Compare with /proc/mounts where it says a mount point is a tmpfs.
	f, err := os.Open("/proc/mounts")
	if err != nil {
		t.Skipf("no /proc/mounts: %v", err)
	}
	defer f.Close()
	checked := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "tmpfs" || strings.Contains(fields[1], `\`) {
			continue
		}
		got, err := OnTmpfs(fields[1])
		if err != nil {
			continue // not visible to us
		}
		if !got {
			t.Errorf("OnTmpfs(%s) = false; /proc/mounts says tmpfs", fields[1])
		}
		checked++
	}
	if checked == 0 {
		t.Log("no tmpfs mount to check against")
	}
}
