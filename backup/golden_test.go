package backup

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/seal"
)

var update = flag.Bool("update", false, "rewrite the golden backup files in testdata")

// Fixed inputs of the golden files. The unlock key is a test key of no
// cluster.
const (
	goldenKey        = "HFKEY-1-limiumtqm7oeoeufm4neyjnoqkjeurpy4u6wkytdxqt6zp5af33ozrjcvm"
	goldenPassphrase = "golden passphrase, not a real one"
	goldenData       = `{"format":"holdfast-fsm-snapshot/1","index":42,"state":{"nodes":{},"removed":{}}}`
)

// TestGoldenFiles opens backups written by an earlier build: a change to
// the header, the key derivations or their labels, or the stream would
// make every existing backup unreadable, and fails here first.
// Regenerate (only for a deliberate format change, with a new version)
// with go test ./backup -run Golden -update.
func TestGoldenFiles(t *testing.T) {
	uk, err := autolock.ParseKey(goldenKey)
	if err != nil {
		t.Fatal(err)
	}
	m := Meta{ClusterID: "golden-cluster", Index: 42, Term: 7, CreatedAt: time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC), Size: int64(len(goldenData))}
	files := []struct {
		name string
		make func() (*Header, seal.Key, error)
	}{
		{"unlock-key.hfb", func() (*Header, seal.Key, error) { return ForUnlockKey(uk, m) }},
		{"passphrase.hfb", func() (*Header, seal.Key, error) {
			return ForPassphrase([]byte(goldenPassphrase), m, testArgon2)
		}},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			if *update {
				h, k, err := f.make()
				if err != nil {
					t.Fatal(err)
				}
				if err := writeGolden(f.name, h, k); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(filepath.Join("testdata", f.name))
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			r := bytes.NewReader(b)
			h, err := ReadHeader(r)
			if err != nil {
				t.Fatal(err)
			}
			if h.Meta != m {
				t.Errorf("meta = %+v; want %+v", h.Meta, m)
			}
			k, err := h.KeyFromUnlockKey(uk)
			if h.KDF == KDFArgon2id {
				k, err = h.KeyFromPassphrase([]byte(goldenPassphrase))
			}
			if err != nil {
				t.Fatalf("derive the key: %v", err)
			}
			sr, err := NewReader(r, h, k)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(sr)
			if err != nil || string(got) != goldenData {
				t.Errorf("opened to %q, %v; want %q", got, err, goldenData)
			}
		})
	}
}

func writeGolden(name string, h *Header, k seal.Key) error {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h, k)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, goldenData); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join("testdata", name), buf.Bytes(), 0o644)
}
