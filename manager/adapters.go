package manager

import (
	"context"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/datadir"
)

// The API adapters: each serves one part of an api interface over the
// node's components, with its dependencies named in its fields. The node
// builds them once (newAPIs) and hands them to the API handlers; none of
// them owns state of its own beyond what its fields name.

// secretsAPI serves the control API's secret routes.
type secretsAPI struct {
	writes proposer
	// self returns this node's ID ("self" in a request), "" if none.
	self func() string
	now  func() time.Time // the node's clock
}

// clusterAPI serves the control API's cluster routes: status, settings,
// nodes and their roles, join tokens, the unlock key.
type clusterAPI struct {
	writes  *writePath
	current func() *incarnation
	// locked returns the lock state of a locked node, else nil.
	locked func() *lockState
	// purgeKeys replaces the data-plane keyrings after a removal
	// (keys.go).
	purgeKeys func(ctx context.Context, rn *raftNode, id string) error
	// applyTimeout bounds raft configuration changes; watchTimeout is the
	// workers' long poll, heartbeatTimeout raft's; level is this build's.
	applyTimeout, watchTimeout, heartbeatTimeout time.Duration
	level                                        int
	now                                          func() time.Time // the node's clock
	skew                                         *clockSkew
	// removed returns this node's removal record, nil if not removed.
	removed func() *datadir.Removed
}

// caAPI serves the control API's CA routes.
type caAPI struct {
	writes proposer
	// nodes lists the nodes with their status, for a rotation's progress.
	nodes  func(ctx context.Context) ([]api.Node, error)
	logger *slog.Logger
	now    func() time.Time // the node's clock
}

// keysAPI serves the control API's data-plane key routes.
type keysAPI struct {
	current func() *incarnation
}

// backupAPI serves the control API's backup route.
type backupAPI struct {
	writes proposer
	logger *slog.Logger
	now    func() time.Time // the node's clock
}

// healthAPI answers GET /v1/health, on the control socket and the metrics
// listener, from this node's own view, at once.
type healthAPI struct {
	current func() *incarnation
	locked  func() *lockState
	// removed returns this node's removal record, nil if not removed.
	removed func() *datadir.Removed
}

// joinAPI serves the join protocol: joining with a token, and recovering
// an expired certificate.
type joinAPI struct {
	writes *writePath
	// recoveryWindow is Config.CertRecoveryWindow.
	recoveryWindow time.Duration
	logger         *slog.Logger
	// now is the node's clock; skew its offset from the other managers'
	// (clockskew.go), which may forbid issuing certificates.
	now  func() time.Time
	skew *clockSkew
}

// nodeAPI serves the node API: what other nodes ask of this one.
type nodeAPI struct {
	writes  *writePath
	access  *access
	cluster *clusterAPI
	join    *joinAPI
	current func() *incarnation
	// admitLevel checks a manager's level before raft adds it (levels.go).
	admitLevel func(ctx context.Context, rn *raftNode, id, addr string) error
	// recordConverted records a node's move to a rotation's new root
	// (carotate.go).
	recordConverted func(ctx context.Context, rotID, nodeID string) error
	// watchTimeout bounds the workers' long poll.
	watchTimeout time.Duration
	// now is the node's clock; skew its offset from the other managers'.
	now  func() time.Time
	skew *clockSkew
	// views caches the shared part of workers' views (selfview.go).
	views selfViews
}

var (
	_ api.SecretsBackend   = (*secretsAPI)(nil)
	_ api.ClusterBackend   = (*clusterAPI)(nil)
	_ api.CABackend        = (*caAPI)(nil)
	_ api.KeysBackend      = (*keysAPI)(nil)
	_ api.SnapshotBackend  = (*backupAPI)(nil)
	_ api.HealthBackend    = (*healthAPI)(nil)
	_ api.JoinBackend      = (*joinAPI)(nil)
	_ api.NodeBackend      = (*nodeAPI)(nil)
	_ api.LifecycleBackend = (*Node)(nil)
)

// apis are a node's API adapters.
type apis struct {
	secrets *secretsAPI
	cluster *clusterAPI
	ca      *caAPI
	keys    *keysAPI
	backup  *backupAPI
	health  *healthAPI
	join    *joinAPI
	node    *nodeAPI
}

// newAPIs builds n's API adapters over its components; n.writes and
// n.access must be set.
func newAPIs(n *Node) *apis {
	cfg := n.cfg
	self := func() string {
		if inc := n.current(); inc != nil {
			return inc.info.NodeID
		}
		return ""
	}
	a := &apis{
		secrets: &secretsAPI{writes: n.writes, self: self, now: n.cfg.now},
		cluster: &clusterAPI{
			writes: n.writes, current: n.current, locked: n.locked, purgeKeys: func(ctx context.Context, rn *raftNode, id string) error { return newKeyRotator(n, rn).Purge(ctx, id) },
			applyTimeout: cfg.ApplyTimeout, watchTimeout: cfg.WatchTimeout, heartbeatTimeout: cfg.HeartbeatTimeout, level: cfg.level(),
			now: n.cfg.now, skew: n.skew,
			removed: n.removal.get,
		},
		keys:   &keysAPI{current: n.current},
		backup: &backupAPI{writes: n.writes, logger: n.logger, now: n.cfg.now},
		health: &healthAPI{current: n.current, locked: n.locked, removed: n.removal.get},
		join:   &joinAPI{writes: n.writes, recoveryWindow: cfg.CertRecoveryWindow, logger: n.logger, now: n.cfg.now, skew: n.skew},
	}
	a.ca = &caAPI{writes: n.writes, nodes: a.cluster.Nodes, logger: n.logger, now: n.cfg.now}
	a.node = &nodeAPI{
		writes: n.writes, access: n.access, cluster: a.cluster, join: a.join, current: n.current,
		admitLevel: n.admitLevel, recordConverted: func(ctx context.Context, rotID, nodeID string) error {
			return recordConverted(ctx, n.writes.apply, rotID, nodeID)
		}, watchTimeout: cfg.WatchTimeout, now: n.cfg.now, skew: n.skew,
	}
	return a
}

// control returns the control API's parts; the lifecycle routes are the
// node's own.
func (a *apis) control(lifecycle api.LifecycleBackend) api.ControlBackends {
	return api.ControlBackends{
		Lifecycle: lifecycle, Cluster: a.cluster, Secrets: a.secrets, Keys: a.keys,
		Snapshot: a.backup, Health: a.health, CA: a.ca,
	}
}
