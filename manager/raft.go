package manager

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/datadir"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/raftlog"
	"github.com/holdfast/holdfast/transport"
)

// raftNode is a manager's raft half.
type raftNode struct {
	r                 *raft.Raft
	fsm               *fsm.FSM
	nodeID, clusterID string
	logs              logStore       // the log and stable store raft uses
	store             *raftlog.Store // the same store, sealed; nil with plainLog
	snaps             *raftlog.SnapshotStore
	trans             *raft.NetworkTransport
	// prop batches what this node proposes while it leads.
	prop *batchProposer
	// rotateMu keeps DEK rotations one at a time.
	rotateMu sync.Mutex
	obs      *raft.Observer
	obsCh    chan raft.Observation

	// leaderCh is closed (and forgotten) when raft's leader changes, so
	// that writes waiting for a leader go on at once.
	leaderMu sync.Mutex
	leaderCh chan struct{}

	// readyTerm is the term in which this node, as leader, has applied its
	// leader.ready command; linearizable reads on the leader wait for it.
	readyTerm atomic.Uint64

	// unreachable holds the peers whose heartbeats are failing, as seen
	// while this node leads.
	reachMu     sync.Mutex
	unreachable map[raft.ServerID]bool

	// stable is the stable store as raft sees it (closableStable).
	stable *closableStable

	// levels is what the managers answered this node's probes
	// (levels.go).
	levels levelView
	// syncs times this manager's log syncs; peerDisks is what the other
	// managers reported of theirs (slowdisk.go).
	syncs     syncTimes
	peerDisks peerDisks
	// catchUp is this manager's progress towards the leader's commit
	// index as it was when raft started (catchup.go).
	catchUp catchUp
}

// startRaft opens the raft log and starts raft on inc's port.
// How startRaft starts raft.
type raftMode int

const (
	raftResume    raftMode = iota // the log says who the members are (or a leader will)
	raftBootstrap                 // a new one-member cluster (init)
	raftRecover                   // keep the state, make this node the only member (force-new-cluster)
)

func (n *Node) startRaft(inc *incarnation, mode raftMode) (*raftNode, error) {
	info := inc.info
	dir := n.dir.raftDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft dir: %w", err)
	}
	hlog := newHCLogger(n.logger.With("component", "raft"))
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(info.NodeID)
	conf.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	conf.ElectionTimeout = n.cfg.ElectionTimeout
	conf.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	conf.CommitTimeout = n.cfg.CommitTimeout
	conf.SnapshotThreshold = n.cfg.SnapshotThreshold
	conf.SnapshotInterval = n.cfg.SnapshotInterval
	conf.TrailingLogs = n.cfg.TrailingLogs
	conf.BatchApplyCh = true
	// An entry can be a batch of writes (propose.go) of up to
	// proposeMaxBytes, or one secret of up to 500 KiB: 64 entries bound
	// what one AppendEntries to a follower catching up carries (and holds
	// in memory on both sides) to tens of MiB. Under load entries are
	// proposed a few at a time, so this does not limit batching.
	conf.MaxAppendEntries = 64
	conf.Logger = hlog
	if err := raft.ValidateConfig(conf); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}

	var (
		store  logStore
		snaps  raft.SnapshotStore
		sealed *raftlog.Store
		ssnaps *raftlog.SnapshotStore
		err    error
	)
	if n.cfg.plainLog {
		bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, raftlog.DBFile)})
		if err != nil {
			return nil, err
		}
		if snaps, err = raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog); err != nil {
			bs.Close()
			return nil, err
		}
		store = bs
	} else {
		if sealed, ssnaps, err = n.sealed.open(info.ClusterID, info.NodeID); err != nil {
			return nil, err
		}
		store, snaps = sealed, ssnaps
	}
	// Plaintext entries are cached above the sealing layer, so replication
	// of recent entries does not open them again.
	logs, err := newLogCache(store, logCacheEntries, logCacheBytes)
	if err != nil {
		store.Close()
		return nil, err
	}
	adv, err := net.ResolveTCPAddr("tcp", info.AdvertiseAddr)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("advertise address %s: %w", info.AdvertiseAddr, err)
	}
	// RPCs name the server they are for, and reach it or nobody: the
	// last replication to a removed manager must not install a stale
	// snapshot on a new manager that took its address (the chaos soak
	// saw it leave that manager with a configuration without itself).
	book := transport.NewRaftAddressBook()
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:                transport.NewStreamLayer(inc.mux, adv, inc.tcfg),
		ServerAddressProvider: book,
		MaxPool:               4,
		// No pipelined replication: hashicorp/raft v1.7's pipeline can
		// deadlock when a follower answers Success=false (pipelineDecode
		// returns, nobody drains its responses, the next send blocks for
		// ever with pipeline.Close deferred behind it). The follower then
		// gets heartbeats and no entries, and raft.Shutdown never returns
		// (hashicorp/raft#612; seen here in the chaos soak and the tests).
		// Synchronous replication still batches (MaxAppendEntries).
		MaxRPCsInFlight: 1,
		Timeout:         5 * time.Second,
		Logger:          hlog,
	})
	self := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: conf.LocalID, Address: trans.LocalAddr()}}}
	restored := mode == raftResume && datadir.RestorePending(n.dir.raftDir()) // first start after a restore
	if mode == raftRecover || restored {
		// Replays the log into a scratch FSM, snapshots it, and writes a
		// configuration of this node alone.
		if err := raft.RecoverCluster(conf, fsm.New(nil), logs, store, snaps, trans, self); err != nil {
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("force a new cluster: %w", err)
		}
		if restored {
			if err := datadir.FinishRestore(n.dir.raftDir()); err != nil {
				trans.Close()
				store.Close()
				return nil, err
			}
		}
	}
	rn := &raftNode{nodeID: info.NodeID, clusterID: info.ClusterID, fsm: fsm.NewAtLevel(n.logger.With("component", "fsm"), n.cfg.level()), logs: store, store: sealed, snaps: ssnaps, trans: trans, unreachable: map[raft.ServerID]bool{}}
	if sealed != nil {
		// The disk's part of every batch is timed (slowdisk.go).
		sealed.ObserveSyncs(syncObserver(&rn.syncs, n.cfg.logSyncHook))
	}
	rn.stable = &closableStable{StableStore: store}
	if mode == raftBootstrap {
		rn.catchUp.done.Store(true) // a new cluster: nothing to catch up with
	}
	r, err := raft.NewRaft(conf, n.cfg.raftFSM(rn.fsm), logs, rn.stable, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	rn.r = r
	rn.prop = newProposer(rn, n.cfg.ApplyTimeout)
	book.SetConfiguration(func() []raft.Server { return r.GetConfiguration().Configuration().Servers })
	rn.obsCh = make(chan raft.Observation, 64)
	rn.obs = raft.NewObserver(rn.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(rn.obs)
	if mode == raftBootstrap {
		if err := r.BootstrapCluster(self).Error(); err != nil {
			rn.shutdown(false, n.logger)
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	return rn, nil
}

// logStore is what raft needs of a log store, plus Close.
type logStore interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

// shutdown stops raft; graceful first hands leadership to another voter.
func (rn *raftNode) shutdown(graceful bool, logger *slog.Logger) {
	if graceful && rn.r.State() == raft.Leader && rn.voters() > 1 {
		if err := rn.r.LeadershipTransfer().Error(); err != nil {
			logger.Warn("leadership transfer before shutdown failed", "err", err)
		}
	}
	rn.r.DeregisterObserver(rn.obs)
	// Bounded: the chaos soak saw raft's shutdown wait for ever on a
	// replication goroutine stuck towards an unreachable peer. Closing the
	// transport then unblocks it.
	done := make(chan error, 1)
	go func() { done <- rn.r.Shutdown().Error() }()
	select {
	case err := <-done:
		if err != nil {
			logger.Warn("raft shutdown", "err", err)
		}
		_ = rn.trans.Close()
	case <-time.After(10 * time.Second):
		logger.Error("raft did not shut down within 10s; closing its transport")
		_ = rn.trans.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			// Leave the log open: raft may still touch it.
			logger.Error("raft still not shut down; going on without it")
			return
		}
	}
	rn.stable.close()
	_ = rn.logs.Close()
}

// closableStable is the stable store raft is given. The transport hands
// a heartbeat to raft on the connection's goroutine, which can still be
// in raft when Shutdown has returned and the transport is closed; a new
// term it then stores into a closed store makes raft panic. After close,
// writes are dropped, as if the heartbeat had come after the process
// stopped; close waits for a write in progress.
type closableStable struct {
	raft.StableStore
	mu     sync.RWMutex
	closed bool
}

func (s *closableStable) Set(k, v []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.Set(k, v)
}

func (s *closableStable) SetUint64(k []byte, v uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.SetUint64(k, v)
}

func (s *closableStable) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (rn *raftNode) voters() int {
	f := rn.r.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	v := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}

func (rn *raftNode) isLeader() bool { return rn.r.State() == raft.Leader }

// inConfiguration reports whether this node is a member of raft's
// configuration.
func (rn *raftNode) inConfiguration() bool {
	for _, s := range rn.servers() {
		if string(s.ID) == rn.nodeID {
			return true
		}
	}
	return false
}

// leaderChanged returns a channel closed at the next change of leader.
func (rn *raftNode) leaderChanged() <-chan struct{} {
	rn.leaderMu.Lock()
	defer rn.leaderMu.Unlock()
	if rn.leaderCh == nil {
		rn.leaderCh = make(chan struct{})
	}
	return rn.leaderCh
}

func (rn *raftNode) noteLeaderChange() {
	rn.leaderMu.Lock()
	defer rn.leaderMu.Unlock()
	if rn.leaderCh != nil {
		close(rn.leaderCh)
		rn.leaderCh = nil
	}
}

func (rn *raftNode) setReachable(id raft.ServerID, ok bool) {
	rn.reachMu.Lock()
	defer rn.reachMu.Unlock()
	if ok {
		delete(rn.unreachable, id)
	} else {
		rn.unreachable[id] = true
	}
}

// markReady commits leader.ready in the current term, once per term.
func (rn *raftNode) markReady(nodeID string, timeout time.Duration) error {
	term := rn.r.CurrentTerm()
	if rn.readyTerm.Load() == term || !rn.isLeader() {
		return nil
	}
	b, err := fsm.Encode(&fsm.LeaderReady{NodeID: nodeID, Term: term})
	if err != nil {
		return err
	}
	f := rn.r.Apply(b, timeout)
	if err := f.Error(); err != nil {
		return err
	}
	if rn.r.CurrentTerm() == term {
		rn.readyTerm.Store(term)
	}
	return nil
}

// errNotReady means this leader has not committed an entry in its term
// yet; like errMisdirected, it did nothing and the caller retries.
var errNotReady = api.Errorf(api.CodeNotLeader, "the leader is not ready for reads yet")
