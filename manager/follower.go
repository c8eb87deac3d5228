package manager

import (
	"context"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/backoff"
	"github.com/holdfast/holdfast/internal/spread"
)

// follower is a worker's link to the cluster: it long-polls a manager for
// this node's record, remembers the managers, passes on the CA view, the
// keyrings and the granted secrets, and notices promotion and removal.
type follower struct {
	managers func() []api.PeerAddr
	// client is the node API client of the manager at addr.
	client   func(addr string) *api.Client
	caViews  chan *api.CAView
	secrets  *workerDelivery
	remember func(managers []api.PeerAddr)
	keys     *keyBox
	ask      func(t ca.RoleTarget) // askRole
	log      *slog.Logger
	// self is this node's ID: which manager it polls first (spread.Picker).
	self string
}

func (f *follower) Run(ctx context.Context) error {
	var index uint64
	bo := backoff.New(100*time.Millisecond, 5*time.Second)
	pick := spread.NewPicker(f.self, pollReturn)
	for ctx.Err() == nil {
		managers := f.managers()
		if len(managers) == 0 {
			f.log.Error("worker knows no manager; rejoin the cluster")
			return nil
		}
		m := managers[pick.Pick(peerIDs(managers))]
		client := f.client(m.Addr)
		view, err := client.Self(ctx, index)
		if api.IsRemoved(err) {
			f.log.Error("this node was removed from the cluster; it no longer follows it, and wipes its cluster state (join again with a new token to come back)")
			f.ask(ca.RoleTarget{Removed: true})
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.log.Debug("cannot reach manager", "addr", m.Addr, "err", err)
			pick.Failed()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(bo.Next()):
			}
			continue
		}
		bo.Reset()
		index = view.Index
		if view.CA != nil {
			offerView(f.caViews, view.CA)
		}
		if !f.secrets.deliver(ctx, client, view.Secrets) {
			// Try again soon, through the next manager, without waiting
			// for the state to change.
			index = 0
			pick.Failed()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(bo.Next()):
			}
		}
		if len(view.Managers) > 0 {
			f.remember(view.Managers)
		}
		if len(view.Keyrings) > 0 {
			kv := &keyView{rings: keyringsFromAPI(view.Keyrings), peers: view.GossipPeers}
			if view.Node != nil {
				kv.selfGossip = view.Node.GossipAddr
			}
			f.keys.set(kv)
		}
		if view.Removed {
			f.log.Error("this node was removed from the cluster; it no longer follows it, and wipes its cluster state (join again with a new token to come back)")
			f.ask(ca.RoleTarget{Removed: true})
			return nil
		}
		if view.Node != nil && view.Node.Role == roleManager {
			f.ask(ca.RoleTarget{Role: roleManager})
		}
	}
	return ctx.Err()
}

// rememberManagers keeps inc's list of managers, on disk too (a worker's
// way to the cluster; a manager's to renew an expired certificate).
func rememberManagers(inc *incarnation, managers []api.PeerAddr, save func(*nodeInfo) error, log *slog.Logger) {
	inc.infoMu.Lock()
	defer inc.infoMu.Unlock()
	if samePeers(inc.info.Managers, managers) {
		return
	}
	inc.info.Managers = managers
	if err := save(inc.info); err != nil {
		log.Warn("cannot save the list of managers", "err", err)
	}
}

// rememberManagerPeers keeps a manager's list of the other managers on
// disk, so that after a long outage it knows whom to ask to renew an
// expired certificate.
func rememberManagerPeers(inc *incarnation, save func(*nodeInfo) error, log *slog.Logger) {
	var others []api.PeerAddr
	for _, m := range inc.managers() {
		if m.NodeID != inc.info.NodeID {
			others = append(others, m)
		}
	}
	if len(others) > 0 {
		rememberManagers(inc, others, save, log)
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

// newFollower builds worker inc's follower.
func newFollower(n *Node, inc *incarnation) *follower {
	return &follower{
		managers: inc.managers,
		client:   func(addr string) *api.Client { return peerClient(inc, addr) },
		caViews:  inc.caViews,
		secrets:  &workerDelivery{out: secretWriter{dir: n.cfg.secretsDir(), log: n.logger}, fetchTimeout: n.cfg.ForwardTimeout},
		remember: func(m []api.PeerAddr) { rememberManagers(inc, m, n.dir.saveNodeInfo, n.logger) },
		keys:     inc.keys,
		ask:      func(t ca.RoleTarget) { askRole(inc, n.roleChange, t) },
		log:      n.logger,
		self:     inc.info.NodeID,
	}
}
