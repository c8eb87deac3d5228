package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

// roleRemoved is the "role" of a node the cluster removed.
const roleRemoved = "removed"

// startLoops starts the incarnation's background loops for its role.
// n.mu must be held.
func (n *Node) startLoops(ctx context.Context, inc *incarnation) {
	ctx, cancel := context.WithCancel(ctx)
	inc.cancel = cancel
	inc.loops.Add(2)
	go func() { defer inc.loops.Done(); n.renewLoop(ctx, inc) }()
	go func() { defer inc.loops.Done(); n.runGossip(ctx, inc) }()
	if rn := inc.rn(); rn != nil {
		inc.loops.Add(7)
		go func() { defer inc.loops.Done(); n.access.watch(ctx, inc, rn, n.logger) }()
		go func() { defer inc.loops.Done(); n.keysFromFSM(ctx, inc, rn) }()
		go func() { defer inc.loops.Done(); n.rotateKeysLoop(ctx, rn) }()
		go func() { defer inc.loops.Done(); n.watchRaft(ctx, rn, inc.info.NodeID) }()
		go func() { defer inc.loops.Done(); n.watchUnlockKey(ctx, inc, rn) }()
		go func() { defer inc.loops.Done(); n.deliverFromFSM(ctx, inc, rn) }()
		if rn.store != nil {
			inc.loops.Add(1)
			go func() { defer inc.loops.Done(); n.watchDEK(ctx, inc.info.NodeID, rn) }()
		}
		go func() { defer inc.loops.Done(); n.watchOwnRole(ctx, inc, rn) }()
		inc.loops.Add(2)
		go func() { defer inc.loops.Done(); n.askOwnRole(ctx, inc, rn) }()
		go func() { defer inc.loops.Done(); n.fillOwnAddr(ctx, inc, rn) }()
		inc.loops.Add(1)
		go func() { defer inc.loops.Done(); n.levelsLoop(ctx, inc, rn) }()
		n.startCALoops(ctx, inc, rn)
		return
	}
	inc.loops.Add(1)
	go func() { defer inc.loops.Done(); n.followCluster(ctx, inc) }()
	n.startCALoops(ctx, inc, nil)
}

// stopLoops ends the loops and waits for them. n.mu must be held.
func (inc *incarnation) stopLoops() {
	inc.cancel()
	inc.loops.Wait()
}

func (n *Node) requestRoleChange() {
	select {
	case n.roleChange <- struct{}{}:
	default:
	}
}

// watchOwnRole notices, on a manager, that the cluster has demoted it.
func (n *Node) watchOwnRole(ctx context.Context, inc *incarnation, rn *raftNode) {
	for {
		ch := rn.fsm.Changed()
		var role string
		var removed bool
		rn.fsm.Read(func(s *fsm.State, _ uint64) {
			if p, ok := s.Nodes[inc.info.NodeID]; ok {
				role = p.Role
			}
			_, removed = s.Removed[inc.info.NodeID]
		})
		if removed {
			inc.wantRole.Store(roleRemoved)
			n.requestRoleChange()
			return
		}
		if role == roleWorker {
			inc.wantRole.Store(roleWorker)
			n.requestRoleChange()
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// leaderlessRoleCheck is how long a manager goes without a leader before
// it asks the other managers whether it is still one.
const leaderlessRoleCheck = 3 * time.Second

// askOwnRole covers what watchOwnRole cannot see. A demotion commits the
// role change and then removes the manager from raft; a manager that was
// down or behind gets neither entry, and no leader contacts it again, so
// its own state never says it was demoted: it campaigns for ever and its
// peers refuse it. When it has had no leader for leaderlessRoleCheck, it
// asks the other managers for its record (the node API's self route, which
// its old manager certificate may still call, as the worker it now is),
// and takes a worker role from there. The record is committed state, so
// it never demotes a manager that was not demoted; a later promotion is
// settled by roleChange, which takes the role the renewal answers with.
func (n *Node) askOwnRole(ctx context.Context, inc *incarnation, rn *raftNode) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var leaderless time.Time // since when no leader is known; zero while one is
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, addr := rn.leaderInfo(); addr != "" || rn.isLeader() {
			leaderless = time.Time{}
			continue
		}
		if leaderless.IsZero() {
			leaderless = time.Now()
		}
		if time.Since(leaderless) < leaderlessRoleCheck {
			continue
		}
		for _, m := range inc.managers() {
			if m.NodeID == inc.info.NodeID {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			view, err := peerClient(inc, m.Addr).Self(cctx, 0)
			cancel()
			if api.IsRemoved(err) {
				n.logger.Warn("the cluster removed this manager while it could not hear of it", "told_by", m.NodeID)
				inc.wantRole.Store(roleRemoved)
				n.requestRoleChange()
				return
			}
			if err != nil || view.Node == nil {
				continue
			}
			if view.Node.Role == roleWorker {
				n.logger.Info("the cluster demoted this manager while it could not hear of it; becoming a worker", "told_by", m.NodeID)
				inc.wantRole.Store(roleWorker)
				n.requestRoleChange()
				return
			}
			break // a manager says this node still is one
		}
	}
}

// followCluster is a worker's link to the cluster: it long-polls a manager
// for this node's record, remembers the managers, and notices promotion.
func (n *Node) followCluster(ctx context.Context, inc *incarnation) {
	var index uint64
	backoff := 100 * time.Millisecond
	next := 0
	ws := &workerSecrets{}
	for ctx.Err() == nil {
		managers := inc.managers()
		if len(managers) == 0 {
			n.logger.Error("worker knows no manager; rejoin the cluster")
			return
		}
		m := managers[next%len(managers)]
		client := peerClient(inc, m.Addr)
		view, err := client.Self(ctx, index)
		if api.IsRemoved(err) {
			n.logger.Error("this node was removed from the cluster; it no longer follows it (run 'holdfast leave', then join again with a new token)")
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.logger.Debug("cannot reach manager", "addr", m.Addr, "err", err)
			next++
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		index = view.Index
		if view.CA != nil {
			offerView(inc.caViews, view.CA)
		}
		if !n.deliverFromView(ctx, inc, client, ws, view.Secrets) {
			// Try again soon, through the next manager, without waiting
			// for the state to change.
			index = 0
			next++
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		if len(view.Managers) > 0 {
			n.rememberManagers(inc, view.Managers)
		}
		if len(view.Keyrings) > 0 {
			kv := &keyView{rings: keyringsFromAPI(view.Keyrings), peers: view.GossipPeers}
			if view.Node != nil {
				kv.selfGossip = view.Node.GossipAddr
			}
			inc.keys.set(kv)
		}
		if view.Removed {
			n.logger.Error("this node was removed from the cluster; it no longer follows it (run 'holdfast leave', then join again with a new token)")
			return
		}
		if view.Node != nil && view.Node.Role == roleManager {
			inc.wantRole.Store(roleManager)
			n.requestRoleChange()
		}
	}
}

// rememberManagers keeps a worker's list of managers, on disk too.
func (n *Node) rememberManagers(inc *incarnation, managers []api.PeerAddr) {
	inc.infoMu.Lock()
	defer inc.infoMu.Unlock()
	if samePeers(inc.info.Managers, managers) {
		return
	}
	inc.info.Managers = managers
	if err := n.saveNodeInfo(inc.info); err != nil {
		n.logger.Warn("cannot save the list of managers", "err", err)
	}
}

func samePeers(a, b []api.PeerAddr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// supervise carries out role changes the loops ask for, one at a time,
// retrying until the node's role matches the cluster's.
func (n *Node) supervise(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.roleChange:
		case <-retry.C:
		}
		n.mu.Lock()
		err := n.reconcileRole(ctx)
		n.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			n.logger.Warn("role change failed; retrying", "err", err)
			retry.Reset(time.Second)
		}
	}
}

// reconcileRole switches this node between manager and worker when the
// cluster's record says so: a new certificate with the new role first, then
// raft started (and the node added as a voter) or stopped (and its log
// removed). n.mu must be held.
func (n *Node) reconcileRole(ctx context.Context) error {
	inc := n.current()
	if inc == nil {
		return nil
	}
	want, _ := inc.wantRole.Load().(string)
	if want == roleRemoved {
		// An operator removed this node ('node rm'): every protocol refuses
		// its certificate now, so its cluster state is of no use, and it
		// is sensitive. Wipe it; the node can join again with a token.
		n.logger.Error("this node was removed from the cluster: its cluster state is wiped; join again with a token to come back", "node_id", inc.info.NodeID)
		n.stop(false)
		return n.wipeState()
	}
	if want == roleManager && inc.info.Role == roleManager {
		// Promoted earlier, but adding it to raft failed: try again.
		if rn := inc.rn(); rn != nil && !rn.inConfiguration() {
			return n.becomeVoter(ctx, inc)
		}
		return nil
	}
	if want == "" || want == inc.info.Role {
		return nil
	}
	n.logger.Info("changing role", "from", inc.info.Role, "to", want)
	key, err := ca.NewKey()
	if err != nil {
		return err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return err
	}
	var resp *api.RenewResponse
	var lastErr error = errors.New("no other manager known")
	for _, m := range inc.managers() {
		if m.NodeID == inc.info.NodeID {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
		resp, lastErr = peerClient(inc, m.Addr).Renew(rctx, api.RenewRequest{CSR: csr})
		cancel()
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return fmt.Errorf("renew certificate for role %s: %w", want, lastErr)
	}
	if resp.Role != want {
		inc.wantRole.Store(resp.Role)
		return nil
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		return err
	}
	creds, err := transport.LoadCredentials(resp.CertPEM, keyPEM, resp.RootPEM)
	if err != nil {
		return fmt.Errorf("new certificate: %w", err)
	}
	// From here the loops are stopped (none may write certificates or keys
	// meanwhile) and started again whatever happens.
	managers := inc.managers()
	inc.stopLoops()
	defer n.startLoops(context.WithoutCancel(ctx), inc)
	if want == roleWorker {
		// Workers are never locked: their files are not wrapped.
		n.keyFiles.SetKEK(seal.Key{})
	}
	if err := n.keyFiles.SaveCerts(inc.info.NodeID, &keyfiles.Certs{RootPEM: resp.RootPEM, CertPEM: resp.CertPEM, KeyPEM: keyPEM}); err != nil {
		return err
	}
	inc.setCreds(creds)
	inc.nodeHTTP.CloseIdleConnections()

	if want == roleWorker {
		if rn := inc.rn(); rn != nil {
			rn.shutdown(false, n.logger)
			inc.setRN(nil)
		}
		if err := n.removeRaftState(); err != nil {
			n.logger.Warn("cannot remove the raft log of a demoted manager", "err", err)
		}
		var others []api.PeerAddr
		for _, m := range managers {
			if m.NodeID != inc.info.NodeID {
				others = append(others, m)
			}
		}
		inc.infoMu.Lock()
		inc.info.Role, inc.info.Managers = roleWorker, others
		err := n.saveNodeInfo(inc.info)
		inc.infoMu.Unlock()
		n.logger.Info("demoted to worker")
		return err
	}
	if err := n.removeRaftState(); err != nil {
		return fmt.Errorf("clear raft dir: %w", err)
	}
	rn, err := n.startRaft(inc, raftResume)
	if err != nil {
		return err
	}
	inc.setRN(rn)
	inc.infoMu.Lock()
	inc.info.Role = roleManager
	err = n.saveNodeInfo(inc.info)
	inc.infoMu.Unlock()
	if err != nil {
		return err
	}
	if err := n.becomeVoter(ctx, inc); err != nil {
		return err
	}
	n.logger.Info("promoted to manager")
	return nil
}

// Leave takes this node out of its cluster and wipes its cluster state.
func (n *Node) Leave(ctx context.Context, req api.LeaveRequest) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	inc := n.current()
	if inc == nil {
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
			return c.LeaveNode(ctx, api.LeaveNodeRequest{Force: req.Force})
		})
	if err != nil && !req.Force {
		return fmt.Errorf("remove this node from the cluster: %w", err)
	}
	n.stop(false)
	return n.wipeState()
}
