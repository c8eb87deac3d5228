package manager

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
)

// The node API: what other nodes ask of this one. Routes a follower
// forwards carry out only on the leader; elsewhere they answer
// errMisdirected so the sender retries against the new leader.

// leaderRaft returns raft if this node leads, else errMisdirected.
func (w *writePath) leaderRaft() (*raftNode, error) {
	_, rn, err := w.managerRaft()
	if err != nil {
		return nil, err
	}
	if !rn.isLeader() {
		return nil, errMisdirected
	}
	return rn, nil
}

func (a *nodeAPI) ApplyForwarded(ctx context.Context, from api.Peer, cmd []byte) error {
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return err
	}
	return a.writes.applyLocal(ctx, rn, cmd)
}

// ApplyBatchForwarded proposes forwarded commands together, so raft
// stores them in one batch, and waits for each.
func (a *nodeAPI) ApplyBatchForwarded(ctx context.Context, from api.Peer, cmds [][]byte) ([]error, error) {
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	errs := rn.prop.apply(cmds)
	for _, err := range errs {
		metricApplied(start, err)
	}
	return errs, nil
}

func (a *nodeAPI) ReadIndex(ctx context.Context, from api.Peer) (*api.ReadIndex, error) {
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return nil, err
	}
	return a.writes.readIndexLocal(ctx, rn)
}

func (a *nodeAPI) JoinForwarded(ctx context.Context, from api.Peer, req api.JoinGrantRequest) (*api.JoinGrant, error) {
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return nil, err
	}
	return a.join.grantLocal(ctx, rn, req)
}

func (a *nodeAPI) SetRoleForwarded(ctx context.Context, from api.Peer, id string, role ca.Role) error {
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return err
	}
	return a.cluster.setRoleLocal(ctx, rn, id, role)
}

func (a *nodeAPI) RemoveNodeForwarded(ctx context.Context, from api.Peer, id string, force bool) error {
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return err
	}
	return a.cluster.removeNodeLocal(ctx, rn, id, force)
}

func (a *nodeAPI) RotateJoinTokenForwarded(ctx context.Context, from api.Peer, role ca.Role) (*api.JoinToken, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return nil, err
	}
	return a.cluster.rotateTokenLocal(ctx, rn, role)
}

func (a *nodeAPI) Reachability(ctx context.Context, from api.Peer) (*api.Reachability, error) {
	rn, err := a.writes.leaderRaft()
	if err != nil {
		return nil, err
	}
	return &api.Reachability{Reachable: a.cluster.reachability(ctx, a.current(), rn, false)}, nil
}

// AddVoter adds a manager to raft. The caller is the joining manager
// itself, or a follower forwarding for it (then req.NodeID names it).
func (a *nodeAPI) AddVoter(ctx context.Context, from api.Peer, req api.AddVoterRequest) error {
	if req.NodeID == "" {
		req.NodeID = from.NodeID
	}
	return a.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error {
			var node *fsm.Node
			rn.fsm.Read(func(s *fsm.State, _ uint64) {
				if p, ok := s.Nodes[req.NodeID]; ok {
					c := *p
					node = &c
				}
			})
			if node == nil || node.Role != roleManager {
				return api.Errorf(api.CodePermissionDenied, "node %s is not a manager of this cluster", req.NodeID)
			}
			if err := a.admitLevel(ctx, rn, node.ID, node.Addr); err != nil {
				return err
			}
			if err := rn.r.AddVoter(raft.ServerID(node.ID), raft.ServerAddress(node.Addr), 0, a.writes.applyTimeout).Error(); err != nil {
				return api.Errorf(api.CodeUnavailable, "add %s to raft: %v", node.ID, err)
			}
			return nil
		},
		func(ctx context.Context, c *api.Client) error { return c.AddVoter(ctx, req) })
}

// Self tells a node what the cluster says about it, waiting (long poll)
// until the state moves past afterIndex.
func (a *nodeAPI) Self(ctx context.Context, from api.Peer, afterIndex uint64) (*api.SelfView, error) {
	inc, rn, err := a.writes.managerRaft()
	if err != nil {
		return nil, err
	}
	inc.workerSeen.mark(from.NodeID)
	ctx, cancel := context.WithTimeout(ctx, a.watchTimeout)
	defer cancel()
	// Wait for a change past afterIndex that concerns this node (its
	// record, its grants, the keyrings, the members, the CA: see
	// fsm.Concerning); a secret write for other nodes does not wake it.
	// On timeout, answer with what there is.
wait:
	for {
		index, ch := rn.fsm.Concerning(from.NodeID)
		if index > afterIndex || rn.fsm.NeedsUpgrade() != nil {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			break wait
		}
	}
	// The node may have been removed while it waited: it gets nothing of
	// the state from then on (not the keyrings that replaced its keys).
	if _, err := a.access.peerRole(ca.Identity{NodeID: from.NodeID, Role: from.Role}); errors.Is(err, fsm.ErrNodeRemoved) {
		return nil, api.ErrRemoved
	}
	if st := rn.fsm.NeedsUpgrade(); st != nil {
		// A state that stops short of the log is no answer: the node
		// asks another manager.
		return nil, errNeedsUpgrade(st)
	}
	var view *api.SelfView
	rn.fsm.Read(func(s *fsm.State, index uint64) {
		if index < afterIndex && !rn.isLeader() {
			return // behind what the node has seen: see below
		}
		view = selfViewOf(s, a.views.shared(rn.fsm, s, index), from.NodeID, s.IsRemoved(from.NodeID, a.now()))
	})
	if view == nil {
		// A follower that has not applied what the node saw elsewhere
		// would send it back in time: the node asks another manager. (A
		// leader behind it answers: its state is the cluster's.)
		return nil, api.Errorf(api.CodeUnavailable, "this manager has not yet applied index %d, which the node has seen; ask another manager", afterIndex)
	}
	view.Managers = inc.managers()
	return view, nil
}

// Renew issues the caller a new certificate with the role the cluster now
// gives it, authenticated by its current certificate.
func (a *nodeAPI) Renew(ctx context.Context, from api.Peer, req api.RenewRequest) (*api.RenewResponse, error) {
	var node fsm.Node
	var expiry time.Duration
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		p, ok := s.Nodes[from.NodeID]
		if !ok {
			return api.Errorf(api.CodePermissionDenied, "node %s is not a member of this cluster", from.NodeID)
		}
		node, expiry = *p, s.Cluster.Settings.CertExpiry
		return nil
	})
	if err != nil {
		return nil, err
	}
	_, rn, err := a.writes.managerRaft()
	if err != nil {
		return nil, err
	}
	plan, err := rn.caPlan()
	if err != nil {
		return nil, err
	}
	if err := a.skew.checkIssue(); err != nil {
		return nil, err
	}
	certPEM, err := plan.issuer().Issue(req.CSR, ca.Identity{NodeID: node.ID, Role: node.Role, ClusterID: rn.clusterID}, expiry, a.now())
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "certificate request: %v", err)
	}
	rec, err := ca.RecordOfPEM(certPEM)
	if err != nil {
		return nil, err
	}
	if err := a.writes.apply(ctx, certUpdate(node.ID, rec)); err != nil {
		return nil, err
	}
	return &api.RenewResponse{Role: node.Role, CertPEM: plan.chain(certPEM), RootPEM: plan.trustPEM()}, nil
}

// LeaveNode removes the calling node from the cluster.
func (a *nodeAPI) LeaveNode(ctx context.Context, from api.Peer, req api.LeaveNodeRequest) error {
	return a.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error {
			return a.cluster.removeNodeLocal(ctx, rn, from.NodeID, true)
		},
		func(ctx context.Context, c *api.Client) error { return c.RemoveNodeForwarded(ctx, from.NodeID, true) })
}

func (a *nodeAPI) ClusterStatus(ctx context.Context, from api.Peer) (*api.Status, error) {
	inc, rn, err := a.writes.managerRaft()
	if err != nil {
		return nil, err
	}
	return a.cluster.managerStatus(ctx, inc, rn, true), nil
}

// Grant serves the join protocol: a token and a CSR in, a certificate out.
func (a *joinAPI) Grant(ctx context.Context, req api.JoinGrantRequest) (*api.JoinGrant, error) {
	if _, _, err := a.writes.managerRaft(); err != nil {
		return nil, err
	}
	var out *api.JoinGrant
	err := a.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error {
			g, err := a.grantLocal(ctx, rn, req)
			out = g
			return err
		},
		func(ctx context.Context, c *api.Client) error {
			g, err := c.JoinForwarded(ctx, req)
			out = g
			return err
		})
	return out, err
}

// errBadToken is the one answer for every token that does not grant
// anything: forged, rotated, for another cluster.
var errBadToken = api.Errorf(api.CodeUnauthenticated, "invalid join token: it does not match this cluster's current worker or manager token")

func (a *joinAPI) grantLocal(ctx context.Context, rn *raftNode, req api.JoinGrantRequest) (*api.JoinGrant, error) {
	presented, err := ca.ParseToken(req.Token)
	if err != nil {
		return nil, errBadToken
	}
	if _, port, err := net.SplitHostPort(req.Addr); err != nil || port == "0" {
		return nil, api.Errorf(api.CodeInvalidArgument, "joining node's address %q: want HOST:PORT", req.Addr)
	}
	var role ca.Role
	var clusterID string
	var expiry time.Duration
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster == nil {
			return
		}
		clusterID, expiry = s.Cluster.ID, s.Cluster.Settings.CertExpiry
		// Compare against both, always, in constant time.
		w, werr := ca.ParseToken(s.Cluster.WorkerToken)
		m, merr := ca.ParseToken(s.Cluster.ManagerToken)
		isWorker := werr == nil && presented.Equal(w)
		isManager := merr == nil && presented.Equal(m)
		switch {
		case isManager:
			role = roleManager
		case isWorker:
			role = roleWorker
		}
	})
	if clusterID == "" {
		return nil, api.ErrUninitialized
	}
	if role == "" {
		return nil, errBadToken
	}
	plan, err := rn.caPlan()
	if err != nil {
		return nil, err
	}
	if err := a.skew.checkIssue(); err != nil {
		return nil, err
	}
	now := a.now().UTC()
	id := ca.Identity{NodeID: ca.NewID(), Role: role, ClusterID: clusterID}
	if role == roleManager {
		if err := rn.checkJoinLevel(id.NodeID, req.Level); err != nil {
			return nil, err
		}
	}
	certPEM, err := plan.issuer().Issue(req.CSR, id, expiry, now)
	if err != nil {
		return nil, api.Errorf(api.CodeInvalidArgument, "certificate request: %v", err)
	}
	rec, err := ca.RecordOfPEM(certPEM)
	if err != nil {
		return nil, err
	}
	if err := a.writes.applyCmd(ctx, rn, &fsm.NodeAdd{Node: fsm.Node{ID: id.NodeID, Role: role, Addr: req.Addr, CreatedAt: now, CertExpiresAt: rec.NotAfter, CertSerial: rec.Serial, CertKeySHA256: rec.KeySHA256}}); err != nil {
		return nil, err
	}
	var managers []api.PeerAddr
	for _, s := range rn.servers() {
		managers = append(managers, api.PeerAddr{NodeID: string(s.ID), Addr: string(s.Address)})
	}
	a.logger.Info("node joined", "node_id", id.NodeID, "role", role, "addr", req.Addr)
	return &api.JoinGrant{ClusterID: clusterID, NodeID: id.NodeID, Role: role, CertPEM: plan.chain(certPEM), RootPEM: plan.trustPEM(), Managers: managers}, nil
}
