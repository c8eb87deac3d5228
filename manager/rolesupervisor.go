package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
)

// roleRequests carries a request to re-read this node's role and switch
// between manager and worker; the role supervisor serves it. Capacity 1:
// requests made while one waits are one request.
type roleRequests chan struct{}

func (r roleRequests) request() {
	select {
	case r <- struct{}{}:
	default:
	}
}

// askRole records the role the cluster gives inc's node, or its removal,
// and asks the supervisor to act on it.
func askRole(inc *incarnation, r roleRequests, t ca.RoleTarget) {
	if t.Removed {
		inc.wantRole.StoreRemoved()
	} else {
		inc.wantRole.Store(t.Role)
	}
	r.request()
}

// roleTarget reads what inc's node was last asked to become.
func roleTarget(inc *incarnation) ca.RoleTarget {
	role, removed := inc.wantRole.Load()
	return ca.RoleTarget{Role: role, Removed: removed}
}

// lifecycle is what the role supervisor needs of the node that owns the
// incarnations: the composition root (*Node). Every method needs the
// lifecycle lock held.
type lifecycle interface {
	current() *incarnation
	stop(graceful bool)
	wipeState() error
	startLoops(ctx context.Context, inc *incarnation)
	startRaft(inc *incarnation, mode raftMode) (*raftNode, error)
	removeRaftState() error
	becomeVoter(ctx context.Context, inc *incarnation) error
}

var _ lifecycle = (*Node)(nil)

// roleSupervisor carries out the role changes the loops ask for, one at a
// time under the lifecycle lock, retrying until the node's role matches
// the cluster's. What to do is ca.NextRoleStep's decision.
type roleSupervisor struct {
	requests <-chan struct{}
	mu       *sync.Mutex // the node's lifecycle lock
	life     lifecycle
	saveInfo func(info *nodeInfo) error // writes node.json (dataDir.saveNodeInfo)
	files    *keyfiles.Store
	// renew asks another manager (not self) for a certificate.
	renew func(ctx context.Context, inc *incarnation, req api.RenewRequest) (*api.RenewResponse, error)
	// markRemoved records the node's removal (removalRecord.record) before
	// it is wiped, so that it says "removed" until it joins again.
	markRemoved func(info *nodeInfo) error
	log         *slog.Logger
}

func (s *roleSupervisor) Run(ctx context.Context) error {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.requests:
		case <-retry.C:
		}
		s.mu.Lock()
		err := s.reconcile(ctx)
		s.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			s.log.Warn("role change failed; retrying", "err", err)
			retry.Reset(time.Second)
		}
	}
}

// reconcile switches this node between manager and worker when the
// cluster's record says so: a new certificate with the new role first,
// then raft started (and the node added as a voter) or stopped (and its
// log removed). mu must be held.
func (s *roleSupervisor) reconcile(ctx context.Context) error {
	inc := s.life.current()
	if inc == nil {
		return nil
	}
	target := roleTarget(inc)
	rn := inc.rn()
	switch ca.NextRoleStep(target, inc.info.Role, rn != nil && !rn.inConfiguration()) {
	case ca.RoleKeep:
		return nil
	case ca.RoleWipe:
		// An operator removed this node ('node rm'): every protocol refuses
		// its certificate now, so its cluster state is of no use, and it
		// is sensitive. Wipe it; the node can join again with a token.
		s.log.Error("this node was removed from the cluster: its cluster state is wiped; join again with a token to come back", "node_id", inc.info.NodeID)
		if s.markRemoved != nil {
			if err := s.markRemoved(inc.info); err != nil {
				s.log.Warn("cannot record this node's removal; it will say uninitialized", "err", err)
			}
		}
		s.life.stop(false)
		return s.life.wipeState()
	case ca.RoleRejoin:
		// Promoted earlier, but adding it to raft failed: try again.
		return s.life.becomeVoter(ctx, inc)
	}
	return s.switchRole(ctx, inc, target.Role)
}

func (s *roleSupervisor) switchRole(ctx context.Context, inc *incarnation, want ca.Role) error {
	s.log.Info("changing role", "from", inc.info.Role, "to", want)
	resp, keyPEM, creds, err := newKeyCertificate(ctx, want, inc.tcfg.Now, func(ctx context.Context, req api.RenewRequest) (*api.RenewResponse, error) {
		return s.renew(ctx, inc, req)
	})
	if err != nil {
		return fmt.Errorf("renew certificate for role %s: %w", want, err)
	}
	if creds == nil {
		inc.wantRole.Store(resp.Role)
		return nil
	}
	// From here the loops are stopped (none may write certificates or keys
	// meanwhile) and started again whatever happens.
	managers := inc.managers()
	inc.stopLoops()
	defer s.life.startLoops(context.WithoutCancel(ctx), inc)
	if want == roleWorker {
		// Workers are never locked: their files are not wrapped.
		s.files.SetKEK(seal.Key{})
	}
	if err := s.files.SaveCerts(inc.info.NodeID, &keyfiles.Certs{RootPEM: resp.RootPEM, CertPEM: resp.CertPEM, KeyPEM: keyPEM}); err != nil {
		return err
	}
	inc.setCreds(creds)
	inc.nodeHTTP.CloseIdleConnections()

	if want == roleWorker {
		if rn := inc.rn(); rn != nil {
			rn.shutdown(false, s.log)
			inc.setRN(nil)
		}
		if err := s.life.removeRaftState(); err != nil {
			s.log.Warn("cannot remove the raft log of a demoted manager", "err", err)
		}
		var others []api.PeerAddr
		for _, m := range managers {
			if m.NodeID != inc.info.NodeID {
				others = append(others, m)
			}
		}
		inc.infoMu.Lock()
		inc.info.Role, inc.info.Managers = roleWorker, others
		err := s.saveInfo(inc.info)
		inc.infoMu.Unlock()
		s.log.Info("demoted to worker")
		return err
	}
	if err := s.life.removeRaftState(); err != nil {
		return fmt.Errorf("clear raft dir: %w", err)
	}
	rn, err := s.life.startRaft(inc, raftResume)
	if err != nil {
		return err
	}
	inc.setRN(rn)
	inc.infoMu.Lock()
	inc.info.Role = roleManager
	err = s.saveInfo(inc.info)
	inc.infoMu.Unlock()
	if err != nil {
		return err
	}
	if err := s.life.becomeVoter(ctx, inc); err != nil {
		return err
	}
	s.log.Info("promoted to manager")
	return nil
}

// newRoleSupervisor builds the node's role supervisor.
func newRoleSupervisor(n *Node) *roleSupervisor {
	return &roleSupervisor{
		requests: n.roleChange,
		mu:       &n.mu,
		life:     n,
		saveInfo: n.dir.saveNodeInfo,
		files:    n.keyFiles,
		markRemoved: func(info *nodeInfo) error {
			return n.removal.record(info, time.Now())
		},
		renew: func(ctx context.Context, inc *incarnation, req api.RenewRequest) (*api.RenewResponse, error) {
			var resp *api.RenewResponse
			var lastErr error = errors.New("no other manager known")
			for _, m := range inc.managers() {
				if m.NodeID == inc.info.NodeID {
					continue
				}
				rctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
				resp, lastErr = peerClient(inc, m.Addr).Renew(rctx, req)
				cancel()
				if lastErr == nil {
					break
				}
			}
			return resp, lastErr
		},
		log: n.logger,
	}
}
