package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupCommandUsage(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	notBackup := filepath.Join(dir, "not-a-backup")
	os.WriteFile(notBackup, []byte("HFSNAP\x01 a raft snapshot, not a backup"), 0o600)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"snapshot"}, exitUsage, "needs a subcommand: save, restore"},
		{[]string{"rafttool"}, exitUsage, "needs a subcommand: dump, decrypt"},
		{[]string{"snapshot", "save"}, exitUsage, "FILE"},
		{[]string{"snapshot", "save", "f", "--passphrase-file", ""}, exitUsage, "--passphrase-file needs a file"},
		{[]string{"snapshot", "restore", "f"}, exitUsage, "needs --data-dir DIR"},
		{[]string{"snapshot", "restore", notBackup, "--data-dir", dir}, exitError, "not a holdfast backup file"},
		{[]string{"snapshot", "save", filepath.Join(dir, "b"), "--passphrase-file", empty, "--socket", filepath.Join(dir, "s")}, exitError, "is empty"},
		{[]string{"rafttool", "decrypt", "--data-dir", dir}, exitUsage, "needs --out DIR"},
		{[]string{"rafttool", "dump", "--data-dir", dir}, exitError, "holds no node"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d; want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			checkErrorLine(t, r, tt.want)
		})
	}
}

func TestReadPassphraseFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p")
	os.WriteFile(p, []byte("correct horse battery staple\r\n"), 0o600)
	b, err := readPassphraseFile(p)
	if err != nil || string(b) != "correct horse battery staple" {
		t.Errorf("got %q, %v; want the passphrase without its line break", b, err)
	}
	if _, err := readPassphraseFile(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Errorf("missing file: got %v", err)
	}
}
