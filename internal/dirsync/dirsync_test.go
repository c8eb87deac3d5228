package dirsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSync(t *testing.T) {
	dir := t.TempDir()
	if err := Sync(dir); err != nil {
		t.Fatalf("Sync(%s) = %v", dir, err)
	}
	missing := filepath.Join(dir, "gone")
	if err := Sync(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Sync of a missing directory = %v; want an error naming it", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("Sync created the directory")
	}
}
