package manager

import (
	"context"
	"path/filepath"

	"github.com/holdfast/holdfast/datadir"
)

// nodeInfo is node.json, which package datadir reads and writes.
type nodeInfo = datadir.Info

// dataDir is a node's data directory: the paths in it, and node.json read
// and written at the build's level (Config.level). Node holds one and
// hands it to the components that need it; it is a value, with no state
// of its own.
type dataDir struct {
	dir   string
	level int
}

// Paths inside the data directory.
func (d dataDir) path(parts ...string) string {
	return filepath.Join(append([]string{d.dir}, parts...)...)
}

func (d dataDir) nodeInfoPath() string { return d.path(datadir.InfoFile) }
func (d dataDir) raftDir() string      { return d.path(datadir.RaftDir) }

// loadNodeInfo reads node.json; (nil, nil) when the node has no state.
func (d dataDir) loadNodeInfo() (*nodeInfo, error) {
	return datadir.LoadInfo(d.dir, d.level)
}

func (d dataDir) saveNodeInfo(info *nodeInfo) error {
	return datadir.SaveInfo(d.dir, info, d.level)
}

// fillOwnAddr records this manager's address in its node record when the
// record has none, as after a restore (datadir.FillOwnAddr).
func (n *Node) fillOwnAddr(ctx context.Context, inc *incarnation, rn *raftNode) {
	datadir.FillOwnAddr(ctx, inc.info.NodeID, inc.info.AdvertiseAddr, rn.fsm, n.writes.apply)
}
