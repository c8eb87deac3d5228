package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/atomicfile"
)

// Names inside a data directory.
const (
	// InfoFile is node.json, the Info record.
	InfoFile = "node.json"
	// RaftDir holds raft's files (raftlog's bolt file, its write-ahead
	// file and snapshots).
	RaftDir = "raft"
	// SocketFile is the control socket's default name.
	SocketFile = "holdfast.sock"
)

// Info is node.json: who this node is and where it listens. Nothing in
// it is secret.
type Info struct {
	Format        int     `json:"format"`
	NodeID        string  `json:"node_id"`
	ClusterID     string  `json:"cluster_id"`
	Role          ca.Role `json:"role"`
	ListenAddr    string  `json:"listen_addr"`
	AdvertiseAddr string  `json:"advertise_addr"`
	// GossipAddr is where this node's memberlist listens, with the port
	// it bound.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// Managers are the managers this node last knew of; a worker uses them
	// to reach the cluster after a restart.
	Managers []api.PeerAddr `json:"managers,omitempty"`
	// Level is the level of the build that last wrote the data dir, and
	// ReadLevel the lowest level that can read it. A build whose level is
	// below ReadLevel refuses to start on it, naming both. Builds from
	// before levels wrote neither (and ignore both).
	Level     int `json:"level,omitempty"`
	ReadLevel int `json:"read_level,omitempty"`
}

const infoFormat = 1

// ReadLevel is the lowest level that can read the data dir this build
// writes: raise it when a change of format leaves older builds unable to
// read it, and say so in docs/OPERATIONS.md.
const ReadLevel = fsm.Level1

// ErrLevel is a data dir written by a build newer than this one can read.
var ErrLevel = errors.New("data dir written by a newer build")

// LoadInfo reads dataDir's node.json for a build of level level; (nil,
// nil) when the node has no state. A data dir that needs a higher level
// is ErrLevel; an unknown format or an incomplete record is an error.
func LoadInfo(dataDir string, level int) (*Info, error) {
	path := filepath.Join(dataDir, InfoFile)
	var info Info
	if found, err := readJSONFile(path, "node info", &info); !found || err != nil {
		return nil, err
	}
	if info.ReadLevel > level {
		return nil, fmt.Errorf("%w: %s was written by a build of level %d and needs a build of level %d or later; this build is level %d: run a newer build, or restore a backup taken before the upgrade",
			ErrLevel, dataDir, info.Level, info.ReadLevel, level)
	}
	if info.Format != infoFormat {
		return nil, fmt.Errorf("%s: format %d is not supported by this build", path, info.Format)
	}
	if info.NodeID == "" || info.ClusterID == "" || !info.Role.Valid() {
		return nil, fmt.Errorf("%s: incomplete node info", path)
	}
	return &info, nil
}

// SaveInfo writes info as dataDir's node.json, atomically, recording
// that a build of level level wrote it. It sets info.Format.
func SaveInfo(dataDir string, info *Info, level int) error {
	info.Format = infoFormat
	c := *info // the caller's info may be shared: its level fields are this file's
	c.Level, c.ReadLevel = level, ReadLevel
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dataDir, InfoFile), append(b, '\n'), 0o644)
}

// writeFileAtomic replaces path with data, with mode, through
// atomicfile: a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	if err := atomicfile.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readJSONFile reads the JSON file at path into v; found is false (and
// err nil) when there is no such file. what names the file in errors.
func readJSONFile(path, what string, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("parse %s: %w", path, err)
	}
	return true, nil
}
