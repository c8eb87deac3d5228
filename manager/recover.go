package manager

import (
	"context"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// recovery forces a new cluster from a manager that lost quorum (init
// --force-new-cluster). Its dependencies are the node's lifecycle (stop,
// start), the write path's linearize, the certificate renewal of an
// expired manager, and join tokens; every method needs the node's
// lifecycle lock held, which also guards *expired.
type recovery struct {
	current func() *incarnation
	// expired is Node.expired: set on a manager that could not start
	// because its certificate expired (expired.go).
	expired      **nodeInfo
	stop         func(graceful bool)
	start        func(ctx context.Context, info *nodeInfo, mode raftMode) error
	linearize    func(ctx context.Context) (*raftNode, error)
	renewExpired func(ctx context.Context, inc *incarnation) error
	joinToken    func(ctx context.Context, role ca.Role) (*api.JoinToken, error)
	logger       *slog.Logger
}

// newRecovery builds n's forced-recovery component.
func newRecovery(n *Node) *recovery {
	return &recovery{
		current:   n.current,
		expired:   &n.expired,
		stop:      n.stop,
		start:     n.start,
		linearize: n.writes.linearize,
		renewExpired: func(ctx context.Context, inc *incarnation) error {
			return newRenewer(n, inc).RenewIfExpired(ctx)
		},
		joinToken: n.apis.cluster.JoinToken,
		logger:    n.logger,
	}
}

// forceNewCluster makes a manager that lost quorum the only member of a new
// cluster with all of its state: same cluster ID, CA, tokens, secrets and
// nodes' records; raft's configuration is this node alone. Other managers
// can then join with a manager token; the lost ones should be removed with
// 'node rm --force'. A locked node is unlocked first (the control API
// refuses everything else while it is locked). Node.mu must be held.
func (r *recovery) forceNewCluster(ctx context.Context) (*api.InitResponse, error) {
	inc := r.current()
	if inc == nil && *r.expired != nil {
		return r.forceNewClusterExpired(ctx)
	}
	if inc == nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "this node is not part of a cluster: --force-new-cluster recovers a manager that lost quorum; use plain 'holdfast init' to create a cluster")
	}
	if inc.rn() == nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "this node is a worker: --force-new-cluster runs on a manager, which holds the cluster's state")
	}
	info := inc.info
	r.logger.Warn("forcing a new cluster from this manager's state", "node_id", info.NodeID)
	r.stop(false)
	if err := r.start(context.WithoutCancel(ctx), info, raftRecover); err != nil {
		return nil, err
	}
	// Wait until it leads its one-member cluster and has applied its state.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := r.linearize(ctx); err != nil {
		return nil, err
	}
	return r.forcedClusterResponse(ctx, info)
}

// forceNewClusterExpired is forceNewCluster for a manager that could not
// start because its certificate expired: it starts on the expired
// certificate (no peer will accept it, and a one-member raft needs none),
// then renews it from the CA in its own state. Node.mu must be held.
func (r *recovery) forceNewClusterExpired(ctx context.Context) (*api.InitResponse, error) {
	info := *r.expired
	r.logger.Warn("forcing a new cluster from this manager's state; its certificate expired", "node_id", info.NodeID)
	if err := r.start(context.WithoutCancel(ctx), info, raftRecover); err != nil {
		return nil, err
	}
	*r.expired = nil
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := r.linearize(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.renewExpired(ctx, r.current()); err != nil {
		return nil, err
	}
	return r.forcedClusterResponse(ctx, info)
}

func (r *recovery) forcedClusterResponse(ctx context.Context, info *nodeInfo) (*api.InitResponse, error) {
	out := &api.InitResponse{ClusterID: info.ClusterID, NodeID: info.NodeID, Addr: info.AdvertiseAddr}
	tw, err := r.joinToken(ctx, roleWorker)
	if err != nil {
		return nil, err
	}
	tm, err := r.joinToken(ctx, roleManager)
	if err != nil {
		return nil, err
	}
	out.WorkerToken, out.ManagerToken = tw.Token, tm.Token
	r.logger.Info("new cluster forced: this manager is its only member", "cluster_id", info.ClusterID)
	return out, nil
}
