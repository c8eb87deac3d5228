package manager

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

// nodeInfo is node.json: who this node is and where it listens. Nothing in
// it is secret.
type nodeInfo struct {
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

const nodeInfoFormat = 1

// dataDirReadLevel is the lowest level that can read the data dir this
// build writes: raise it when a change of format leaves older builds
// unable to read it, and say so in docs/OPERATIONS.md.
const dataDirReadLevel = fsm.Level1

// errDataDirLevel is a data dir written by a build newer than this one can
// read.
var errDataDirLevel = errors.New("data dir written by a newer build")

// Paths inside the data directory.
func (n *Node) path(parts ...string) string {
	return filepath.Join(append([]string{n.cfg.DataDir}, parts...)...)
}

func (n *Node) nodeInfoPath() string { return n.path("node.json") }
func (n *Node) raftDir() string      { return n.path("raft") }

// loadNodeInfo reads node.json; (nil, nil) when the node has no state.
func (n *Node) loadNodeInfo() (*nodeInfo, error) {
	b, err := os.ReadFile(n.nodeInfoPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read node info: %w", err)
	}
	var info nodeInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("parse %s: %w", n.nodeInfoPath(), err)
	}
	if level := n.cfg.level(); info.ReadLevel > level {
		return nil, fmt.Errorf("%w: %s was written by a build of level %d and needs a build of level %d or later; this build is level %d: run a newer build, or restore a backup taken before the upgrade",
			errDataDirLevel, n.cfg.DataDir, info.Level, info.ReadLevel, level)
	}
	if info.Format != nodeInfoFormat {
		return nil, fmt.Errorf("%s: format %d is not supported by this build", n.nodeInfoPath(), info.Format)
	}
	if info.NodeID == "" || info.ClusterID == "" || (info.Role != roleManager && info.Role != roleWorker) {
		return nil, fmt.Errorf("%s: incomplete node info", n.nodeInfoPath())
	}
	return &info, nil
}

func (n *Node) saveNodeInfo(info *nodeInfo) error {
	info.Format = nodeInfoFormat
	c := *info // the caller's info may be shared: its level fields are this file's
	c.Level, c.ReadLevel = n.cfg.level(), dataDirReadLevel
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(n.nodeInfoPath(), append(b, '\n'), 0o644)
}

// writeFileAtomic replaces path with data, with mode, through
// atomicfile: a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	if err := atomicfile.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
