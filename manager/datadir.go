package manager

import (
	"context"
	"path/filepath"

	"github.com/holdfast/holdfast/datadir"
)

// nodeInfo is node.json, which package datadir reads and writes.
type nodeInfo = datadir.Info

// Paths inside the data directory.
func (n *Node) path(parts ...string) string {
	return filepath.Join(append([]string{n.cfg.DataDir}, parts...)...)
}

func (n *Node) nodeInfoPath() string { return n.path(datadir.InfoFile) }
func (n *Node) raftDir() string      { return n.path(datadir.RaftDir) }

// loadNodeInfo reads node.json; (nil, nil) when the node has no state.
func (n *Node) loadNodeInfo() (*nodeInfo, error) {
	return datadir.LoadInfo(n.cfg.DataDir, n.cfg.level())
}

func (n *Node) saveNodeInfo(info *nodeInfo) error {
	return datadir.SaveInfo(n.cfg.DataDir, info, n.cfg.level())
}

// fillOwnAddr records this manager's address in its node record when the
// record has none, as after a restore (datadir.FillOwnAddr).
func (n *Node) fillOwnAddr(ctx context.Context, inc *incarnation, rn *raftNode) {
	datadir.FillOwnAddr(ctx, inc.info.NodeID, inc.info.AdvertiseAddr, rn.fsm, n.writes.apply)
}
