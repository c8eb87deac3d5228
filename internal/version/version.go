// Package version says which release of holdfast a binary is, for
// `holdfast version` and the daemon's logs.
//
// The version comes, in this order, from:
//
//   - Version, when the build set it with the linker:
//     go build -ldflags "-X github.com/holdfast/holdfast/internal/version.Version=v0.1.0" ./cmd/holdfast
//   - the main module's version in the binary's build information, which
//     `go install github.com/holdfast/holdfast/cmd/holdfast@v0.1.0` records
//     (and which `go build` in a git checkout derives from the commit and
//     its tags, e.g. v0.1.1-0.20261203201234-889d62a1b2c3+dirty);
//   - the VCS revision the binary was built from, as dev-<12 hex digits>,
//     with -dirty when the tree had changes;
//   - else "dev" (go run, go test).
package version

import (
	"runtime/debug"
	"strings"
)

// Version is the release, when the build sets it with -ldflags -X; empty
// otherwise.
var Version string

// String returns the binary's version (see the package documentation).
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return resolve(Version, info)
}

// resolve is String over a linker value and build information (nil when
// the binary has none).
func resolve(linked string, info *debug.BuildInfo) string {
	if v := strings.TrimSpace(linked); v != "" {
		return v
	}
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		return "dev-" + rev + "-dirty"
	}
	return "dev-" + rev
}
