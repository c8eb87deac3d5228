package manager

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// The leader proposes writes to raft in batches: the writes that arrive
// while proposeInFlight entries are being committed become one log entry
// (fsm.TypeBatch), so that raft seals, stores, replicates and applies one
// entry for them rather than one each. A lone write is proposed at once,
// as its own entry. A batch stays well under fsm.MaxCommandSize
// (proposeMaxBytes plus its framing, fsm.BatchSize).
const (
	proposeInFlight = 2
	proposeMaxBatch = 256
	// proposeMaxBytes bounds a batch entry's commands; a larger command
	// (a secret of up to 500 KiB) is proposed alone.
	proposeMaxBytes = 256 << 10
)

// batchProposer batches what this node proposes while it leads.
type batchProposer struct {
	batcher
	rn      proposeTarget
	timeout time.Duration // how long a proposal may wait to be enqueued
}

// proposeTarget is raft as the leader's proposer sees it (*raftNode).
type proposeTarget interface {
	// propose appends data to the log as one entry.
	propose(data []byte, timeout time.Duration) raft.ApplyFuture
	// checkFrom reports whether this leader has applied an entry of its
	// own term, and its commit index now: a state that has applied that
	// far holds every write any client has seen, acknowledged or read.
	checkFrom() (commit uint64, ok bool)
	// state is the replicated state machine.
	state() *fsm.FSM
	// proposalVersion is the cluster version to encode for.
	proposalVersion() int
}

func (rn *raftNode) propose(data []byte, timeout time.Duration) raft.ApplyFuture {
	return rn.r.Apply(data, timeout)
}

func (rn *raftNode) checkFrom() (uint64, bool) {
	commit := rn.r.CommitIndex()
	return commit, rn.readyTerm.Load() == rn.r.CurrentTerm()
}

func newProposer(rn proposeTarget, timeout time.Duration) *batchProposer {
	p := &batchProposer{rn: rn, timeout: timeout}
	p.batcher = batcher{limit: proposeInFlight, maxCount: proposeMaxBatch, maxBytes: proposeMaxBytes, send: p.send}
	return p
}

// apply proposes the encoded commands and returns each one's result once
// it is applied here, or why it was not. Batches are the proposer's to
// make: a batch among cmds (only a peer could send one) is refused on its
// own, so it cannot spoil the batch it would have joined.
func (p *batchProposer) apply(cmds [][]byte) []error {
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		if fsm.IsBatch(c) {
			errs[i] = api.Errorf(api.CodeInvalidArgument, "a %s command is made by the leader, not sent to it", fsm.TypeBatch)
		}
	}
	p.check(cmds, errs)
	var queued [][]byte
	var at []int
	for i, c := range cmds {
		if errs[i] == nil {
			queued, at = append(queued, c), append(at, i)
		}
	}
	if len(queued) == 0 {
		return errs
	}
	for i, r := range p.submit(queued) {
		errs[at[i]] = <-r.done
	}
	return errs
}

// check refuses, before they enter the log, the commands that would fail
// if applied now (fsm.State.Check), setting their errs. A refusal must be
// one a linearizable order allows: the command goes before every write
// still in flight, and after every write a client has seen. A client sees
// a write when it is acknowledged, and also when a read shows it: a read
// on a follower waits for the leader's commit index, which the leader's
// own state may not have reached yet (it applies after it commits). So
// check refuses only from a state that has applied at least the commit
// index taken before it reads, of a leader that has applied an entry of
// its own term (its commit index then covers every earlier leader's).
// Otherwise it lets everything through to the FSM, which checks again in
// log order in any case.
func (p *batchProposer) check(cmds [][]byte, errs []error) {
	commit, ok := p.rn.checkFrom()
	if !ok {
		return
	}
	decoded := make([]fsm.Command, len(cmds))
	for i, b := range cmds {
		if errs[i] != nil {
			continue
		}
		c, err := fsm.Decode(b)
		if err != nil {
			errs[i] = api.Wrap(api.CodeInvalidArgument, err)
			continue
		}
		decoded[i] = c
	}
	p.rn.state().Read(func(s *fsm.State, applied uint64) {
		if applied < commit {
			checkSkips.Inc()
			return
		}
		for i, c := range decoded {
			if c == nil {
				continue
			}
			if err := s.Check(c); err != nil {
				errs[i] = fsmError(err)
			}
		}
	})
	for i, c := range decoded {
		if c != nil && errs[i] != nil {
			checkRefusals.Inc()
		}
	}
}

// send proposes one batch as one entry and hands each command its result.
// Every manager must be able to apply what it proposes: it encodes each
// command for the cluster version, and proposes a batch entry only when
// the cluster version allows one, else each command as its own entry.
func (p *batchProposer) send(batch []*batchReq) {
	cv := p.rn.proposalVersion()
	if batch = encodeFor(cv, batch); len(batch) == 0 {
		return
	}
	if len(batch) > 1 && !fsm.BatchAllowed(cv) {
		p.sendEach(batch)
		return
	}
	answer := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	data := batch[0].cmd
	if len(batch) > 1 {
		cmds := make([][]byte, len(batch))
		for i, r := range batch {
			cmds[i] = r.cmd
		}
		var err error
		if data, err = fsm.EncodeBatch(cmds); err != nil {
			answer(api.Wrap(api.CodeInvalidArgument, err))
			return
		}
	}
	f := p.rn.propose(data, p.timeout)
	if err := f.Error(); err != nil {
		answer(raftApplyError(err))
		return
	}
	res, ok := f.Response().(*fsm.Result)
	switch {
	case !ok:
		answer(fmt.Errorf("unexpected apply response %T", f.Response()))
	case len(batch) == 1:
		batch[0].done <- fsmError(res.Err)
	case res.Err != nil:
		// The entry itself was refused: nothing in it was applied.
		answer(fsmError(res.Err))
	case len(res.Batch) != len(batch):
		answer(fmt.Errorf("a batch of %d commands has %d results", len(batch), len(res.Batch)))
	default:
		for i, r := range batch {
			r.done <- fsmError(res.Batch[i].Err)
		}
	}
}

// encodeFor puts each command of batch in an encoding that every manager
// at cluster version cv can apply, answers those that have none (or that
// no build knows), and returns the others.
func encodeFor(cv int, batch []*batchReq) []*batchReq {
	out := batch[:0] // in place: each is written at or before where it was read
	for _, r := range batch {
		if err := fsm.Check(r.cmd); err != nil {
			r.done <- api.Wrap(api.CodeInvalidArgument, err)
			continue
		}
		b, err := fsm.Downgrade(r.cmd, cv)
		switch {
		case errors.Is(err, fsm.ErrClusterVersion):
			r.done <- api.Wrap(api.CodeConflict, err)
		case err != nil:
			r.done <- api.Wrap(api.CodeInvalidArgument, err)
		default:
			r.cmd = b
			out = append(out, r)
		}
	}
	return out
}

// sendEach proposes each command of batch as its own entry, for a cluster
// whose oldest manager knows no batch entry. The entries are proposed
// together and answered in turn.
func (p *batchProposer) sendEach(batch []*batchReq) {
	futures := make([]raft.ApplyFuture, len(batch))
	for i, r := range batch {
		futures[i] = p.rn.propose(r.cmd, p.timeout)
	}
	for i, f := range futures {
		if err := f.Error(); err != nil {
			batch[i].done <- raftApplyError(err)
			continue
		}
		if res, ok := f.Response().(*fsm.Result); ok {
			batch[i].done <- fsmError(res.Err)
		} else {
			batch[i].done <- fmt.Errorf("unexpected apply response %T", f.Response())
		}
	}
}

// raftApplyError is what a write answers when raft did not apply it.
func raftApplyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it entered the log: the write goes to the
		// next leader.
		return errMisdirected
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return api.Errorf(api.CodeUnavailable, "write timed out before it was proposed: %v", err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return api.Errorf(api.CodeUnavailable, "leadership lost while writing; the write may or may not have been applied")
	default:
		return api.Errorf(api.CodeUnavailable, "write failed: %v", err)
	}
}
