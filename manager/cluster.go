package manager

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
)

// readState runs fn over a linearizable view of the state.
func (w *writePath) readState(ctx context.Context, fn func(s *fsm.State) error) error {
	rn, err := w.linearize(ctx)
	if err != nil {
		return err
	}
	var ferr error
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster == nil {
			ferr = api.ErrUninitialized
			return
		}
		ferr = fn(s)
	})
	return ferr
}

// Nodes answers `node ls`.
func (a *clusterAPI) Nodes(ctx context.Context) ([]api.Node, error) {
	inc := a.current()
	var out []api.Node
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		if inc == nil || inc.rn() == nil {
			return api.ErrNotManager
		}
		out = a.nodeViews(ctx, inc, inc.rn(), s)
		return nil
	})
	return out, err
}

// Node answers `node inspect`; "self" names this node.
func (a *clusterAPI) Node(ctx context.Context, id string) (*api.Node, error) {
	if id == "self" {
		if inc := a.current(); inc != nil {
			id = inc.info.NodeID
		}
	}
	inc := a.current()
	var out *api.Node
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		if inc == nil || inc.rn() == nil {
			return api.ErrNotManager
		}
		for _, v := range a.nodeViews(ctx, inc, inc.rn(), s) {
			if v.ID == id {
				out = &v
				return nil
			}
		}
		return api.Errorf(api.CodeNotFound, "node %s not found", id)
	})
	return out, err
}

// nodeViews joins the node records with raft's configuration and this
// manager's view of who is reachable.
func (a *clusterAPI) nodeViews(ctx context.Context, inc *incarnation, rn *raftNode, s *fsm.State) []api.Node {
	voters := map[string]bool{}
	for _, srv := range rn.servers() {
		voters[string(srv.ID)] = srv.Suffrage == raft.Voter
	}
	leaderID, _ := rn.leaderInfo()
	reach := a.reachability(ctx, inc, rn, true)
	out := []api.Node{}
	for _, node := range s.SortedNodes() {
		v := api.Node{
			ID: node.ID, Role: node.Role, Addr: node.Addr, Leader: node.ID == leaderID,
			Voter: voters[node.ID], CertExpiresAt: node.CertExpiresAt, CreatedAt: node.CreatedAt, GossipAddr: node.GossipAddr,
			Level: node.Level, Commands: node.Commands,
		}
		alive, gossiped := inc.gossipReach(node.ID)
		switch {
		case gossiped && alive:
			v.Status = api.NodeReady
		case gossiped:
			v.Status = api.NodeDown
		case node.Role == roleManager && reach[node.ID]:
			v.Status = api.NodeReady
		case node.Role == roleManager:
			v.Status = api.NodeDown
		case inc.workerSeen.since(node.ID, 2*a.watchTimeout):
			v.Status = api.NodeReady
		default:
			v.Status = api.NodeUnknown
		}
		out = append(out, v)
	}
	return out
}

// SetRole promotes or demotes a node. Demotion removes it from raft first
// is not safe, so the role is recorded first and the node then leaves raft.
func (a *clusterAPI) SetRole(ctx context.Context, id string, role ca.Role) error {
	if id == "self" {
		if inc := a.current(); inc != nil {
			id = inc.info.NodeID
		}
	}
	return a.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error { return a.setRoleLocal(ctx, rn, id, role) },
		func(ctx context.Context, c *api.Client) error { return c.SetRoleForwarded(ctx, id, role) })
}

func (a *clusterAPI) setRoleLocal(ctx context.Context, rn *raftNode, id string, role ca.Role) error {
	var node fsm.Node
	var managers int
	var found bool
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if p, ok := s.Nodes[id]; ok {
			node, found = *p, true
		}
		managers = s.Managers()
	})
	if !found {
		return api.Errorf(api.CodeNotFound, "node %s not found", id)
	}
	if role == roleWorker && node.Role == roleManager && managers == 1 {
		return api.Errorf(api.CodeConflict, "cannot demote the last manager: promote another node first")
	}
	if role == roleWorker && id == rn.nodeID {
		// A leader does not remove itself: hand over, and let the next
		// leader carry out the demotion.
		if err := rn.r.LeadershipTransfer().Error(); err != nil {
			return api.Errorf(api.CodeUnavailable, "hand leadership over before demoting this node: %v", err)
		}
		return errMisdirected
	}
	if node.Role != role {
		if err := a.writes.applyCmd(ctx, rn, &fsm.NodeSetRole{ID: id, Role: role}); err != nil {
			return err
		}
	}
	if role == roleWorker {
		if err := rn.r.RemoveServer(raft.ServerID(id), 0, a.applyTimeout).Error(); err != nil {
			return api.Errorf(api.CodeUnavailable, "remove %s from raft: %v", id, err)
		}
	}
	return nil
}

// applyCmd applies cmd on this node, which leads.
func (w *writePath) applyCmd(ctx context.Context, rn *raftNode, cmd fsm.Command) error {
	b, err := fsm.Encode(cmd)
	if err != nil {
		return api.Wrap(api.CodeInvalidArgument, err)
	}
	return w.applyLocal(ctx, rn, b)
}

// RemoveNode answers `node rm`: the node's record goes, its ID goes on the
// deny list until its certificate expires, and a manager leaves raft.
func (a *clusterAPI) RemoveNode(ctx context.Context, id string, force bool) error {
	if inc := a.current(); inc != nil && (id == "self" || id == inc.info.NodeID) {
		return api.Errorf(api.CodeInvalidArgument, "a node cannot remove itself; run 'holdfast leave' on it instead")
	}
	return a.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error { return a.removeNodeLocal(ctx, rn, id, force) },
		func(ctx context.Context, c *api.Client) error { return c.RemoveNodeForwarded(ctx, id, force) })
}

func (a *clusterAPI) removeNodeLocal(ctx context.Context, rn *raftNode, id string, force bool) error {
	var node fsm.Node
	var found bool
	var expiry time.Duration
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if p, ok := s.Nodes[id]; ok {
			node, found = *p, true
		}
		if s.Cluster != nil {
			expiry = s.Cluster.Settings.CertExpiry
		}
	})
	if !found {
		return api.Errorf(api.CodeNotFound, "node %s not found", id)
	}
	if node.Role == roleManager && !force {
		return api.Errorf(api.CodeInvalidArgument, "node %s is a manager: demote it first ('holdfast node demote %s'), or remove it with --force", id, id)
	}
	if id == rn.nodeID {
		if err := rn.r.LeadershipTransfer().Error(); err != nil {
			return api.Errorf(api.CodeUnavailable, "hand leadership over before removing this node: %v", err)
		}
		return errMisdirected
	}
	// Deny until the last certificate the node could hold has expired.
	until := node.CertExpiresAt
	if latest := a.now().Add(expiry); until.Before(latest) {
		until = latest
	}
	if err := a.writes.applyCmd(ctx, rn, &fsm.NodeRemove{ID: id, Until: until.UTC(), Force: force}); err != nil {
		return err
	}
	if node.Role == roleManager {
		if err := rn.r.RemoveServer(raft.ServerID(id), 0, a.applyTimeout).Error(); err != nil {
			return api.Errorf(api.CodeUnavailable, "remove %s from raft: %v", id, err)
		}
	}
	if err := a.purgeKeys(ctx, rn, id); err != nil {
		return api.Errorf(api.CodeUnavailable, "node %s was removed, but replacing the data-plane keys it held failed (they go at the next scheduled rotation): %v", id, err)
	}
	return nil
}

// JoinToken answers `join-token ROLE`.
func (a *clusterAPI) JoinToken(ctx context.Context, role ca.Role) (*api.JoinToken, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out api.JoinToken
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		out = api.JoinToken{Role: role, Token: s.Cluster.WorkerToken}
		if role == roleManager {
			out.Token = s.Cluster.ManagerToken
		}
		return nil
	})
	return &out, err
}

func checkRole(role ca.Role) error {
	if role != roleManager && role != roleWorker {
		return api.Errorf(api.CodeInvalidArgument, "role %q: want worker or manager", role)
	}
	return nil
}

// RotateJoinToken answers `join-token --rotate ROLE`. The new token is made
// on the leader, from the current root.
func (a *clusterAPI) RotateJoinToken(ctx context.Context, role ca.Role) (*api.JoinToken, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	var out *api.JoinToken
	err := a.writes.onLeader(ctx,
		func(ctx context.Context, rn *raftNode) error {
			tok, err := a.rotateTokenLocal(ctx, rn, role)
			out = tok
			return err
		},
		func(ctx context.Context, c *api.Client) error {
			tok, err := c.RotateJoinTokenForwarded(ctx, role)
			out = tok
			return err
		})
	return out, err
}

func (a *clusterAPI) rotateTokenLocal(ctx context.Context, rn *raftNode, role ca.Role) (*api.JoinToken, error) {
	root, err := rn.root()
	if err != nil {
		return nil, err
	}
	tok, err := ca.NewToken(root)
	if err != nil {
		return nil, err
	}
	if err := a.writes.applyCmd(ctx, rn, &fsm.TokenRotate{Role: role, Token: tok.String()}); err != nil {
		return nil, err
	}
	return &api.JoinToken{Role: role, Token: tok.String()}, nil
}

// root returns the cluster CA from the replicated state, parsed once per
// distinct PEM.
func (rn *raftNode) root() (*ca.Root, error) {
	var certPEM, keyPEM []byte
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster != nil {
			certPEM, keyPEM = s.Cluster.RootCertPEM, s.Cluster.RootKeyPEM
		}
	})
	if certPEM == nil {
		return nil, api.ErrUninitialized
	}
	rootCache.mu.Lock()
	defer rootCache.mu.Unlock()
	if rootCache.root != nil && string(rootCache.pem) == string(certPEM) {
		return rootCache.root, nil
	}
	r, err := ca.ParseRoot(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	rootCache.pem, rootCache.root = certPEM, r
	return r, nil
}

var rootCache struct {
	mu   sync.Mutex
	pem  []byte
	root *ca.Root
}

// Update answers `holdfast update`.
func (a *clusterAPI) Update(ctx context.Context, req api.UpdateRequest) (*api.UpdateResponse, error) {
	var settings fsm.Settings
	var unlockKey string
	if err := a.writes.readState(ctx, func(s *fsm.State) error {
		settings, unlockKey = s.Cluster.Settings, s.Cluster.UnlockKey
		return nil
	}); err != nil {
		return nil, err
	}
	if req.CertExpiry != nil || req.KeyRotation != nil {
		next := settings
		if req.CertExpiry != nil {
			if err := parseDuration("cert expiry", *req.CertExpiry, &next.CertExpiry); err != nil {
				return nil, err
			}
		}
		if req.KeyRotation != nil {
			if err := parseDuration("key rotation", *req.KeyRotation, &next.KeyRotation); err != nil {
				return nil, err
			}
		}
		if err := next.Validate(); err != nil {
			return nil, api.Wrap(api.CodeInvalidArgument, err)
		}
		if err := a.writes.apply(ctx, &fsm.SettingsUpdate{Settings: next}); err != nil {
			return nil, err
		}
	}
	out := &api.UpdateResponse{}
	switch {
	case req.Autolock == nil:
	case *req.Autolock == settings.Autolock:
		out.UnlockKey = unlockKey // already so; show the key when on
	default:
		k, err := setAutolock(ctx, a.writes, *req.Autolock, 0, 0)
		if err != nil {
			return nil, err
		}
		out.UnlockKey = k.UnlockKey
	}
	return out, nil
}
