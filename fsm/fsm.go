package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Result is what Apply returns for each command (raft's ApplyFuture.Response).
type Result struct {
	// Err is why the command changed nothing; nil when it was applied.
	Err error
}

// FSM is the raft.FSM over State. It is safe for concurrent use: raft calls
// Apply, Snapshot and Restore; everyone else calls Read, Index and Changed.
type FSM struct {
	logger *slog.Logger

	mu      sync.RWMutex
	state   *State
	index   uint64
	changed chan struct{}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM holding an empty, uninitialized state.
func New(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{logger: logger, state: newState(), changed: make(chan struct{})}
}

// Apply applies one committed log entry.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.applyLocked(l)
	f.notifyLocked()
	return r
}

// ApplyBatch applies several committed entries under one lock.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]any, len(logs))
	for i, l := range logs {
		out[i] = f.applyLocked(l)
	}
	f.notifyLocked()
	return out
}

func (f *FSM) applyLocked(l *raft.Log) *Result {
	if l.Index > f.index {
		f.index = l.Index
	}
	if l.Type != raft.LogCommand {
		return &Result{}
	}
	c, err := Decode(l.Data)
	if err != nil {
		f.logger.Warn("refusing log entry", "index", l.Index, "err", err)
		return &Result{Err: err}
	}
	if err := applyTo(f.state, c); err != nil {
		return &Result{Err: err}
	}
	return &Result{}
}

func (f *FSM) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Read calls fn with the current state and the index of the last applied
// entry, under a read lock. fn must not keep or change the state.
func (f *FSM) Read(fn func(s *State, index uint64)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.state, f.index)
}

// Index returns the index of the last applied entry.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index
}

// Changed returns a channel that is closed when the next entry is applied or
// a snapshot restored.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// snapshotFormat is the first line of a snapshot, so a later format can be
// told apart.
const snapshotFormat = "holdfast-fsm-snapshot/1"

type snapshotDoc struct {
	Format string `json:"format"`
	Index  uint64 `json:"index"`
	State  *State `json:"state"`
}

// Snapshot captures the state. The copy is taken now (raft requires that
// Apply can run while Persist writes).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(snapshotDoc{Format: snapshotFormat, Index: f.index, State: f.state})
	if err != nil {
		return nil, fmt.Errorf("snapshot state: %w", err)
	}
	return &snapshot{data: b}, nil
}

// ErrBadSnapshot is returned by Restore for a snapshot it cannot read.
var ErrBadSnapshot = errors.New("unreadable state snapshot")

// Restore replaces the state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var doc snapshotDoc
	dec := json.NewDecoder(io.LimitReader(rc, 1<<31))
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	if doc.Format != snapshotFormat {
		return fmt.Errorf("%w: format %q", ErrBadSnapshot, doc.Format)
	}
	st := doc.State
	if st == nil {
		st = newState()
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*Node{}
	}
	if st.Removed == nil {
		st.Removed = map[string]time.Time{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = st
	f.index = doc.Index
	f.notifyLocked()
	return nil
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
