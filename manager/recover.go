package manager

import (
	"context"
	"time"

	"github.com/holdfast/holdfast/api"
)

// forceNewCluster makes a manager that lost quorum the only member of a new
// cluster with all of its state: same cluster ID, CA, tokens, secrets and
// nodes' records; raft's configuration is this node alone. Other managers
// can then join with a manager token; the lost ones should be removed with
// 'node rm --force'. A locked node is unlocked first (the control API
// refuses everything else while it is locked). n.mu must be held.
func (n *Node) forceNewCluster(ctx context.Context) (*api.InitResponse, error) {
	inc := n.current()
	if inc == nil && n.expired != nil {
		return n.forceNewClusterExpired(ctx)
	}
	if inc == nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "this node is not part of a cluster: --force-new-cluster recovers a manager that lost quorum; use plain 'holdfast init' to create a cluster")
	}
	if inc.rn() == nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "this node is a worker: --force-new-cluster runs on a manager, which holds the cluster's state")
	}
	info := inc.info
	n.logger.Warn("forcing a new cluster from this manager's state", "node_id", info.NodeID)
	n.stop(false)
	if err := n.start(context.WithoutCancel(ctx), info, raftRecover); err != nil {
		return nil, err
	}
	// Wait until it leads its one-member cluster and has applied its state.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := n.writes.linearize(ctx); err != nil {
		return nil, err
	}
	return n.forcedClusterResponse(ctx, info)
}

// forceNewClusterExpired is forceNewCluster for a manager that could not
// start because its certificate expired: it starts on the expired
// certificate (no peer will accept it, and a one-member raft needs none),
// then renews it from the CA in its own state. n.mu must be held.
func (n *Node) forceNewClusterExpired(ctx context.Context) (*api.InitResponse, error) {
	info := n.expired
	n.logger.Warn("forcing a new cluster from this manager's state; its certificate expired", "node_id", info.NodeID)
	if err := n.start(context.WithoutCancel(ctx), info, raftRecover); err != nil {
		return nil, err
	}
	n.expired = nil
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := n.writes.linearize(ctx)
	if err != nil {
		return nil, err
	}
	if err := newRenewer(n, n.current()).RenewIfExpired(ctx); err != nil {
		return nil, err
	}
	return n.forcedClusterResponse(ctx, info)
}

func (n *Node) forcedClusterResponse(ctx context.Context, info *nodeInfo) (*api.InitResponse, error) {
	out := &api.InitResponse{ClusterID: info.ClusterID, NodeID: info.NodeID, Addr: info.AdvertiseAddr}
	tw, err := n.apis.cluster.JoinToken(ctx, roleWorker)
	if err != nil {
		return nil, err
	}
	tm, err := n.apis.cluster.JoinToken(ctx, roleManager)
	if err != nil {
		return nil, err
	}
	out.WorkerToken, out.ManagerToken = tw.Token, tm.Token
	n.logger.Info("new cluster forced: this manager is its only member", "cluster_id", info.ClusterID)
	return out, nil
}
