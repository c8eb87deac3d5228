package manager

import (
	"context"
	"fmt"
	"time"

	"github.com/holdfast/holdfast/api"
)

// Leave takes this node out of its cluster and wipes its cluster state.
func (n *Node) Leave(ctx context.Context, req api.LeaveRequest) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	inc := n.current()
	if inc == nil {
		if removed, err := n.removal.leaveRemoved(); removed {
			return err
		}
		return api.Errorf(api.CodeInvalidArgument, "this node is not part of a cluster")
	}
	rn := inc.rn()
	if rn == nil {
		// A worker tells a manager, best effort: a worker that cannot reach
		// any still leaves, and an operator can 'node rm' it later.
		for _, m := range inc.managers() {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := peerClient(inc, m.Addr).LeaveNode(lctx, api.LeaveNodeRequest{})
			cancel()
			if err == nil {
				break
			}
		}
		n.stop(false)
		return n.wipeState()
	}
	voters := rn.voters()
	if voters <= 1 {
		if !req.Force {
			return api.Errorf(api.CodeInvalidArgument, "this is the last manager: leaving destroys the cluster and all its state; use --force to do it anyway")
		}
		n.stop(false)
		return n.wipeState()
	}
	reach := n.apis.cluster.reachability(ctx, inc, rn, true)
	others := 0
	for _, s := range rn.servers() {
		if string(s.ID) != inc.info.NodeID && reach[string(s.ID)] {
			others++
		}
	}
	if quorum := (voters-1)/2 + 1; others < quorum && !req.Force {
		return api.Errorf(api.CodeInvalidArgument, "leaving would leave the cluster without quorum: %d of the %d other managers are reachable and %d are needed; use --force to leave anyway", others, voters-1, quorum)
	}
	if rn.isLeader() {
		if err := rn.r.LeadershipTransfer().Error(); err != nil && !req.Force {
			return api.Errorf(api.CodeUnavailable, "cannot hand leadership over before leaving: %v", err)
		}
	}
	err := n.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error { return errMisdirected },
		func(ctx context.Context, c *api.Client) error {
			return c.LeaveNode(ctx, api.LeaveNodeRequest(req))
		})
	if err != nil && !req.Force {
		return fmt.Errorf("remove this node from the cluster: %w", err)
	}
	n.stop(false)
	return n.wipeState()
}
