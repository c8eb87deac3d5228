package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/secrets"
)

// Result is what Apply returns for each command (raft's ApplyFuture.Response).
type Result struct {
	// Err is why the command changed nothing; nil when it was applied.
	// For a batch, it is set only when the entry itself could not be read.
	Err error
	// Batch is, for a batch (TypeBatch), each command's result in order.
	Batch []Result
}

// FSM is the raft.FSM over State. It is safe for concurrent use: raft calls
// Apply, Snapshot and Restore; everyone else calls Read, Index and Changed.
type FSM struct {
	logger *slog.Logger
	// level is what this FSM applies; CurrentLevel but in tests that run
	// a build as an older one (NewAtLevel).
	level int

	mu      sync.RWMutex
	state   *State
	index   uint64
	changed chan struct{}
	// access counts applied commands that change who may do what
	// (accessChanging); appendedAt is the newest AppendedAt applied.
	access     atomic.Uint64
	appendedAt time.Time
	// stuck is the entry this FSM could not apply, once it met one: it
	// then applies nothing more, and index stays before that entry.
	stuck *UpgradeError
	// concerns records which nodes the applied entries concerned
	// (concern.go).
	concerns concerns
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM holding an empty, uninitialized state.
func New(logger *slog.Logger) *FSM {
	return NewAtLevel(logger, CurrentLevel)
}

// NewAtLevel returns an FSM that applies only what a build of the given
// level knows, and stops at anything else as that build would. Only tests
// (and the daemon's test-only HOLDFAST_TEST_LEVEL) run at a level below
// CurrentLevel.
func NewAtLevel(logger *slog.Logger, level int) *FSM {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	level = min(max(level, LowestLevel), CurrentLevel)
	return &FSM{logger: logger, level: level, state: newState(), changed: make(chan struct{})}
}

// Level returns the level this FSM applies.
func (f *FSM) Level() int { return f.level }

// NeedsUpgrade returns the entry this FSM stopped at, or nil while it
// applies every entry. Once set it stays until a snapshot is restored: a
// build that knows the entry applies it after a restart, from the log.
func (f *FSM) NeedsUpgrade() *UpgradeError {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.stuck
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
	if f.stuck != nil {
		// Never skip: nothing after the entry this build cannot apply is
		// applied, and the index stays before it.
		return &Result{Err: f.stuck}
	}
	if l.Type == raft.LogCommand && f.level < CurrentLevel {
		if cv, ok := unknownIn(l.Data, f.level); ok {
			return f.stopAt(l.Index, cv)
		}
	}
	if l.AppendedAt.After(f.appendedAt) {
		f.appendedAt = l.AppendedAt
	}
	if l.Type != raft.LogCommand {
		f.index = max(f.index, l.Index)
		f.concernLocked(l.Index, nil, true) // a configuration: the managers
		return &Result{}
	}
	c, err := Decode(l.Data)
	if err != nil {
		if cv, ok := unknownIn(l.Data, f.level); ok {
			return f.stopAt(l.Index, cv)
		}
		f.index = max(f.index, l.Index)
		f.logger.Warn("refusing log entry", "index", l.Index, "err", err)
		return &Result{Err: err}
	}
	f.index = max(f.index, l.Index)
	if b, ok := c.(*Batch); ok {
		res := &Result{Batch: make([]Result, len(b.Commands))}
		for i, c := range b.Commands {
			res.Batch[i].Err = f.applyOne(l.Index, c)
		}
		return res
	}
	if err := f.applyOne(l.Index, c); err != nil {
		return &Result{Err: err}
	}
	return &Result{}
}

// stopAt records that entry index holds cv, which this build cannot
// apply, and says so once, loudly.
// applyOne applies command c of the entry at index to the state and notes
// whom it concerned.
func (f *FSM) applyOne(index uint64, c Command) error {
	ids, everyone := concernedBy(f.state, c)
	f.noteAccess(c)
	err := applyTo(f.state, c)
	if err == nil {
		f.concernLocked(index, ids, everyone)
	}
	return err
}

func (f *FSM) stopAt(index uint64, cv CommandVersion) *Result {
	f.stuck = &UpgradeError{Index: index, Command: cv, Level: f.level}
	f.concernLocked(f.index, nil, true) // every poll learns it is stuck
	f.logger.Error("cannot apply log entry: this build does not know its command; applying stops here until this manager runs a build that does",
		"index", index, "command", cv.Type.String(), "version", cv.Version, "level", f.level)
	return &Result{Err: f.stuck}
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

// Snapshot formats. Version 1 is one JSON document; Snapshot writes
// version 2, in which the secrets, nearly all of a large state, are in
// their binary form (secrets.Store.AppendBinary) after a small JSON header
// (the rest of the state), so restoring it is not spent scanning base64:
//
//	"HFSNAP2\n" uvarint(len(header)) header store
//
// with header the version 1 document of the state without its secrets.
// Restore reads both.
const (
	snapshotFormat  = "holdfast-fsm-snapshot/1"
	snapshotFormat2 = "holdfast-fsm-snapshot/2"
	snapshotMagic2  = "HFSNAP2\n"
)

type snapshotDoc struct {
	Format string `json:"format"`
	Index  uint64 `json:"index"`
	State  *State `json:"state"`
}

// Snapshot captures the state. raft calls it on the goroutine that
// applies entries, so it only copies: the small part of the state as JSON,
// the secrets as a frozen copy without their data (secrets.Store.Frozen).
// Persist encodes them while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.stuck != nil {
		// raft would record this snapshot as covering every entry it
		// handed over, and compact the log past the one not applied.
		return nil, fmt.Errorf("no snapshot while stopped: %w", f.stuck)
	}
	header, frozen, err := f.freezeLocked(snapshotFormat2)
	if err != nil {
		return nil, err
	}
	return &snapshot{header: header, secrets: frozen}, nil
}

// freezeLocked returns the JSON document of the state without its secrets,
// and a frozen copy of the secrets. f.mu must be held.
func (f *FSM) freezeLocked(format string) ([]byte, *secrets.Store, error) {
	rest := *f.state
	rest.Secrets = secrets.Store{}
	header, err := json.Marshal(snapshotDoc{Format: format, Index: f.index, State: &rest})
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot state: %w", err)
	}
	return header, f.state.Secrets.Frozen(), nil
}

// ErrBadSnapshot is returned by Restore for a snapshot it cannot read.
var ErrBadSnapshot = errors.New("unreadable state snapshot")

// Restore replaces the state with a snapshot's, of either format.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<31))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	st, index, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = st
	f.access.Add(1)
	f.index = index
	f.stuck = nil
	f.concernLocked(index, nil, true)
	f.notifyLocked()
	return nil
}

// decodeSnapshot reads a snapshot of either format.
func decodeSnapshot(b []byte) (*State, uint64, error) {
	var doc snapshotDoc
	format := snapshotFormat
	if rest, ok := bytes.CutPrefix(b, []byte(snapshotMagic2)); ok {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, 0, fmt.Errorf("%w: truncated header", ErrBadSnapshot)
		}
		header, store := rest[k:k+int(n)], rest[k+int(n):]
		if err := json.Unmarshal(header, &doc); err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		if doc.State == nil {
			return nil, 0, fmt.Errorf("%w: no state", ErrBadSnapshot)
		}
		if err := doc.State.Secrets.UnmarshalBinary(store); err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		format = snapshotFormat2
	} else {
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&doc); err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
	}
	if doc.Format != format {
		return nil, 0, fmt.Errorf("%w: format %q", ErrBadSnapshot, doc.Format)
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
	return st, doc.Index, nil
}

// snapshot is a frozen state: Persist writes format 2.
type snapshot struct {
	header  []byte
	secrets *secrets.Store
}

// head is what precedes the secrets: the magic, the header's length and
// the header.
func (s *snapshot) head() []byte {
	b := make([]byte, 0, len(snapshotMagic2)+binary.MaxVarintLen64+len(s.header))
	b = append(b, snapshotMagic2...)
	b = binary.AppendUvarint(b, uint64(len(s.header)))
	return append(b, s.header...)
}

func (s *snapshot) encode() []byte {
	return s.secrets.AppendBinary(s.head())
}

// Persist streams the snapshot to sink (secrets.Store.WriteBinary): a
// snapshot of a large state is not built in memory first.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.secrets.WriteBinary(sink, s.head()); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
