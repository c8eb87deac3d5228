package manager

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// raftObserver follows leadership and heartbeat observations: a new
// leader commits leader.ready, and the leader tracks which peers answer.
type raftObserver struct {
	rn           *raftNode
	self         string
	applyTimeout time.Duration
	log          *slog.Logger
}

func (o *raftObserver) Run(ctx context.Context) error {
	rn, nodeID := o.rn, o.self
	ready := make(chan struct{}, 1)
	poke := func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	if rn.isLeader() {
		poke()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ob := <-rn.obsCh:
			switch d := ob.Data.(type) {
			case raft.LeaderObservation:
				rn.noteLeaderChange()
				if string(d.LeaderID) == nodeID {
					rn.reachMu.Lock()
					clear(rn.unreachable)
					rn.reachMu.Unlock()
					poke()
				}
			case raft.FailedHeartbeatObservation:
				rn.setReachable(d.PeerID, false)
			case raft.ResumedHeartbeatObservation:
				rn.setReachable(d.PeerID, true)
			case raft.PeerObservation:
				if d.Removed {
					rn.setReachable(d.Peer.ID, true)
				}
			}
		case <-ready:
			if err := rn.markReady(nodeID, o.applyTimeout); err != nil && rn.isLeader() {
				o.log.Warn("new leader could not commit leader.ready; retrying", "err", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
				poke()
			}
		}
	}
}
