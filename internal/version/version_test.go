package version

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "889d62a1b2c3d4e5f60718293a4b5c6d7e8f9012"
	for _, tc := range []struct {
		name   string
		linked string
		info   *debug.BuildInfo
		want   string
	}{
		{"linker value wins", "v0.2.0", &debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}, Settings: vcs(rev, "false")}, "v0.2.0"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Path: "github.com/holdfast/holdfast", Version: "v0.1.0"}}, "v0.1.0"},
		{"go build in a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.1.1-0.20261203201234-889d62a1b2c3+dirty"}, Settings: vcs(rev, "true")}, "v0.1.1-0.20261203201234-889d62a1b2c3+dirty"},
		{"devel with a revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "dev-889d62a1b2c3"},
		{"devel, modified tree", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "dev-889d62a1b2c3-dirty"},
		{"devel without VCS", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"no build information", "", nil, "dev"},
		{"blank linker value is unset", "  ", nil, "dev"},
	} {
		if got := resolve(tc.linked, tc.info); got != tc.want {
			t.Errorf("%s: got %q; want %q", tc.name, got, tc.want)
		}
	}
}

// TestBinaryVersion builds the real binary twice, once with the version
// set through the linker, and checks what `holdfast version` prints.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "holdfast")
	const want = "v9.8.7-test"
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/holdfast/holdfast/internal/version.Version="+want,
		"github.com/holdfast/holdfast/cmd/holdfast")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("holdfast version: %v", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if f := strings.Fields(first); len(f) != 2 || f[0] != "Version:" || f[1] != want {
		t.Errorf("holdfast version: first line %q; want Version: %s", first, want)
	}
	out, err = exec.Command(bin, "version", "--format", "json").Output()
	if err != nil || !strings.Contains(string(out), `"version": "`+want+`"`) && !strings.Contains(string(out), `"version":"`+want+`"`) {
		t.Errorf("holdfast version --format json: %s (%v); want version %s", out, err, want)
	}
}
