package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// RemovedFile is removed.json, the Removed record.
const RemovedFile = "removed.json"

// Removed is removed.json: the record a node keeps after the cluster
// removed it ('node rm') and it wiped its cluster state, so that it says
// "removed" (status, health), also after a restart, until it joins again.
// Nothing in it is secret.
type Removed struct {
	Format    int       `json:"format"`
	NodeID    string    `json:"node_id"`
	ClusterID string    `json:"cluster_id"`
	Role      ca.Role   `json:"role"`
	RemovedAt time.Time `json:"removed_at"`
}

const removedFormat = 1

// LoadRemoved reads dataDir's removed.json; (nil, nil) when there is none.
func LoadRemoved(dataDir string) (*Removed, error) {
	path := filepath.Join(dataDir, RemovedFile)
	var r Removed
	if found, err := readJSONFile(path, "removal record", &r); !found || err != nil {
		return nil, err
	}
	if r.Format != removedFormat {
		return nil, fmt.Errorf("%s: format %d is not supported by this build", path, r.Format)
	}
	return &r, nil
}

// SaveRemoved writes r as dataDir's removed.json, atomically. It sets
// r.Format.
func SaveRemoved(dataDir string, r *Removed) error {
	r.Format = removedFormat
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dataDir, RemovedFile), append(b, '\n'), 0o644)
}

// ClearRemoved deletes dataDir's removed.json, if any.
func ClearRemoved(dataDir string) error {
	if err := os.Remove(filepath.Join(dataDir, RemovedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove removal record: %w", err)
	}
	return nil
}
