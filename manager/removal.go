package manager

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/datadir"
)

// removalRecord owns removed.json (datadir.Removed): what a node keeps
// after the cluster removed it and it wiped its cluster state, so that it
// reports state "removed" — on status, on /v1/health, after a restart —
// until it joins again, rather than "uninitialized" as if nothing had
// happened. It is safe for concurrent use.
type removalRecord struct {
	dir string
	p   atomic.Pointer[datadir.Removed]
}

// get returns the record, nil when this node was not removed.
func (r *removalRecord) get() *datadir.Removed {
	if r == nil {
		return nil
	}
	return r.p.Load()
}

// record writes the record for the node described by info: called when
// the node learns it was removed, before it wipes its state, so that a
// crash in between still finds it (settle then finishes the wipe).
func (r *removalRecord) record(info *nodeInfo, now time.Time) error {
	rec := &datadir.Removed{NodeID: info.NodeID, ClusterID: info.ClusterID, Role: info.Role, RemovedAt: now.UTC()}
	if err := datadir.SaveRemoved(r.dir, rec); err != nil {
		return err
	}
	r.p.Store(rec)
	return nil
}

// clear forgets the record: the node runs a new incarnation (init, join)
// or an operator ran 'holdfast leave' on it.
func (r *removalRecord) clear() error {
	if r.get() == nil {
		return nil
	}
	if err := datadir.ClearRemoved(r.dir); err != nil {
		return err
	}
	r.p.Store(nil)
	return nil
}

// settle reads the record when Run starts, with the node's info (nil for
// none), and decides what the node resumes: a record of the node that
// node.json names is a wipe that a crash interrupted, which it finishes
// (and the node resumes nothing); a record of another node ID is stale
// (the node joined again as a new node) and is deleted.
func (r *removalRecord) settle(info *nodeInfo, wipe func() error) (*nodeInfo, error) {
	rec, err := datadir.LoadRemoved(r.dir)
	if err != nil || rec == nil {
		return info, err
	}
	switch removalStep(rec, info) {
	case removalFinishWipe:
		if err := wipe(); err != nil {
			return nil, err
		}
		info = nil
	case removalForget:
		return info, datadir.ClearRemoved(r.dir)
	}
	r.p.Store(rec)
	return info, nil
}

// removalAction is what a node does at start with its removal record.
type removalAction int

const (
	removalKeep       removalAction = iota // no state: stay removed
	removalFinishWipe                      // the removed node's state is still there: wipe it
	removalForget                          // the state is a later node's: the record is stale
)

// removalStep decides removalAction for record rec and the node info on
// disk (nil for none).
func removalStep(rec *datadir.Removed, info *nodeInfo) removalAction {
	switch {
	case info == nil:
		return removalKeep
	case info.NodeID == rec.NodeID:
		return removalFinishWipe
	default:
		return removalForget
	}
}

// errRemovedHere is what the control API answers, on a node the cluster
// removed, for everything but status, health, init, join and leave.
var errRemovedHere = api.Errorf(api.CodeRemoved, "this node was removed from the cluster and its cluster state was wiped; to bring it back, run 'holdfast join --token TOKEN HOST:PORT' with a current join token ('holdfast join-token worker' or 'manager' on a manager)")

// removedOnly answers errRemovedHere on a node the cluster removed
// (removed returns non-nil) for every control route but those that still
// make sense: status, health, and init, join and leave to start again.
func removedOnly(removed func() *datadir.Removed, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status", "/v1/health", "/v1/init", "/v1/join", "/v1/leave":
		default:
			if removed() != nil {
				api.WriteError(w, errRemovedHere)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// leaveRemoved is 'holdfast leave' on a removed node whose state is
// already wiped: it forgets the removal, so the node is uninitialized,
// and ErrRemoved's advice ('holdfast leave', then join) works as written.
// It returns false when the node has no removal record.
func (r *removalRecord) leaveRemoved() (bool, error) {
	if r.get() == nil {
		return false, nil
	}
	if err := r.clear(); err != nil {
		return true, api.Errorf(api.CodeInternal, "cannot forget this node's removal: %v", err)
	}
	return true, nil
}
