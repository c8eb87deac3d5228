//go:build unix

package atomicfile

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
)

// The mode is exact whatever the umask: 0644 under a 0077 umask (as the
// daemon runs) stays 0644, and 0400 stays 0400 under a 0 umask.
func TestModeIgnoresUmask(t *testing.T) {
	for _, tc := range []struct {
		umask int
		mode  uint32
	}{{0o077, 0o644}, {0, 0o400}, {0o022, 0o600}} {
		old := syscall.Umask(tc.umask)
		p := filepath.Join(t.TempDir(), "f")
		err := WriteFile(p, []byte("x"), 0)
		if err == nil {
			err = WriteFile(p, []byte("data"), fs.FileMode(tc.mode))
		}
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		wantFile(t, p, []byte("data"), fs.FileMode(tc.mode))
	}
}
