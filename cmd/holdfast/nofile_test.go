package main

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/transport"
)

// TestOpenFileLimitWarning: the daemon logs the limit in effect, and
// warns when it is below what the connection limits need.
func TestOpenFileLimitWarning(t *testing.T) {
	need := openFilesNeeded(transport.Limits{})
	if need < transport.DefaultMaxConns+transport.DefaultMaxHandshakes {
		t.Fatalf("needed %d descriptors; the default limits alone take %d", need, transport.DefaultMaxConns+transport.DefaultMaxHandshakes)
	}
	for _, tc := range []struct {
		soft uint64
		warn bool
	}{{1024, true}, {need - 1, true}, {need, false}, {1 << 20, false}} {
		var buf bytes.Buffer
		checkOpenFileLimit(slog.New(slog.NewTextHandler(&buf, nil)), transport.Limits{}, tc.soft, 1<<20)
		out := buf.String()
		if !strings.Contains(out, "level=INFO msg=\"open-file limit\"") {
			t.Errorf("soft %d: the limit is not logged: %s", tc.soft, out)
		}
		if got := strings.Contains(out, "level=WARN"); got != tc.warn {
			t.Errorf("soft %d (needed %d): warned %v; want %v: %s", tc.soft, need, got, tc.warn, out)
		}
	}
	// Smaller limits need fewer.
	if small := openFilesNeeded(transport.Limits{MaxConns: 100, MaxHandshakes: 10}); small != 100+10+openFileMargin {
		t.Errorf("needed for 100 connections and 10 handshakes: %d", small)
	}
}

// TestGoRaisesOpenFileLimit: the Go runtime has already raised the soft
// limit to (one below) the hard one, which is why the daemon does not.
func TestGoRaisesOpenFileLimit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("checked on Linux")
	}
	soft, hard, err := openFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if soft+1 < hard {
		t.Fatalf("soft open-file limit %d, hard %d: Go did not raise it", soft, hard)
	}
}
