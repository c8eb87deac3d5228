package manager

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/secrets"
)

// fakeLog is raft as the leader's proposer sees it: each proposal is an
// entry applied at once to a real FSM (of the given level), unless err is
// set, which every future then returns.
type fakeLog struct {
	t     *testing.T
	f     *fsm.FSM
	cv    int
	ready bool
	// behind is how many committed entries the leader's state has not
	// applied yet (its commit index is the FSM's index plus behind).
	behind  uint64
	err     error
	mu      sync.Mutex
	entries [][]byte
}

func newFakeLog(t *testing.T, level int) *fakeLog {
	l := &fakeLog{t: t, f: fsm.NewAtLevel(nil, level), cv: level, ready: true}
	b, err := fsm.Encode(&fsm.ClusterInit{Cluster: fsm.Cluster{ID: "c1", Settings: fsm.Settings{CertExpiry: time.Hour, KeyRotation: time.Hour}}, First: fsm.Node{ID: "m1", Role: roleManager}})
	if err == nil {
		b, err = fsm.Downgrade(b, level)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res := l.f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: b}); res.(*fsm.Result).Err != nil {
		t.Fatal(res.(*fsm.Result).Err)
	}
	return l
}

type fakeFuture struct {
	err  error
	resp any
}

func (f fakeFuture) Error() error  { return f.err }
func (f fakeFuture) Index() uint64 { return 0 }
func (f fakeFuture) Response() any { return f.resp }

func (l *fakeLog) propose(data []byte, _ time.Duration) raft.ApplyFuture {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return fakeFuture{err: l.err}
	}
	l.entries = append(l.entries, data)
	return fakeFuture{resp: l.f.Apply(&raft.Log{Index: l.f.Index() + 1, Type: raft.LogCommand, Data: data})}
}

func (l *fakeLog) checkFrom() (uint64, bool) { return l.f.Index() + l.behind, l.ready }
func (l *fakeLog) state() *fsm.FSM           { return l.f }
func (l *fakeLog) proposalVersion() int      { return l.cv }

func (l *fakeLog) secretNames() string {
	var names []string
	l.f.Read(func(s *fsm.State, _ uint64) {
		for _, m := range s.Secrets.List() {
			names = append(names, m.Name)
		}
	})
	return fmt.Sprint(names)
}

// sendTogether sends cmds as one batch, as the batcher would, and returns
// each one's result.
func sendTogether(p *batchProposer, cmds ...[]byte) []error {
	batch := make([]*batchReq, len(cmds))
	for i, c := range cmds {
		batch[i] = &batchReq{cmd: c, done: make(chan error, 1)}
	}
	p.send(batch)
	errs := make([]error, len(cmds))
	for i, r := range batch {
		errs[i] = <-r.done
	}
	return errs
}

// TestBatchProposerEncodesForTheClusterVersion: a batch is one entry where
// the cluster version allows batch entries, one entry per command below
// that, and secret.create goes as version 1 where version 2 is unknown;
// every entry applies on a manager of that level, and each command gets
// its own result (a name taken twice fails only for the second).
func TestBatchProposerEncodesForTheClusterVersion(t *testing.T) {
	for _, tc := range []struct {
		level, wantEntries int
	}{
		{fsm.Level3, 1},
		{2, 3},
		{fsm.LowestLevel, 3},
	} {
		t.Run(fmt.Sprintf("cluster version %d", tc.level), func(t *testing.T) {
			l := newFakeLog(t, tc.level)
			p := newProposer(l, time.Second)
			errs := sendTogether(p, secretCreate(t, "a"), secretCreate(t, "b"), secretCreate(t, "a"))
			if errs[0] != nil || errs[1] != nil || apiStatus(errs[2]) != http.StatusConflict {
				t.Fatalf("results %v; want ok, ok, 409", errs)
			}
			if len(l.entries) != tc.wantEntries {
				t.Errorf("%d entries; want %d", len(l.entries), tc.wantEntries)
			}
			if st := l.f.NeedsUpgrade(); st != nil {
				t.Fatalf("a manager at level %d cannot apply what was proposed: %v", tc.level, st)
			}
			if got := l.secretNames(); got != "[a b]" {
				t.Errorf("secrets %s; want [a b]", got)
			}
		})
	}
}

// TestBatchProposerRaftErrors: what raft answers when it did not apply a
// batch reaches every command in it: "not the leader" is the retryable
// errMisdirected, anything else 503.
func TestBatchProposerRaftErrors(t *testing.T) {
	for _, tc := range []struct {
		err        error
		want       error
		wantStatus int
	}{
		{raft.ErrNotLeader, errMisdirected, 0},
		{raft.ErrLeadershipLost, nil, http.StatusServiceUnavailable},
		{raft.ErrEnqueueTimeout, nil, http.StatusServiceUnavailable},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			l := newFakeLog(t, fsm.Level3)
			l.err = tc.err
			for i, err := range sendTogether(newProposer(l, time.Second), secretCreate(t, "a"), secretCreate(t, "b")) {
				if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && apiStatus(err) != tc.wantStatus {
					t.Errorf("command %d: %v; want %v %d", i, err, tc.want, tc.wantStatus)
				}
			}
		})
	}
}

// TestBatchProposerChecksBeforeTheLog: once the leader has applied an
// entry of its term, a command that would fail is refused before it is
// proposed; before that it goes to the log, and the FSM refuses it. A
// batch command from a peer is refused on its own either way.
func TestBatchProposerChecksBeforeTheLog(t *testing.T) {
	for _, ready := range []bool{true, false} {
		t.Run(fmt.Sprintf("checking %v", ready), func(t *testing.T) {
			l := newFakeLog(t, fsm.Level3)
			p := newProposer(l, time.Second)
			if errs := p.apply([][]byte{secretCreate(t, "taken")}); errs[0] != nil {
				t.Fatal(errs[0])
			}
			before := len(l.entries)
			l.ready = ready
			peerBatch, err := fsm.EncodeBatch([][]byte{secretCreate(t, "x"), secretCreate(t, "y")})
			if err != nil {
				t.Fatal(err)
			}
			errs := p.apply([][]byte{secretCreate(t, "taken"), peerBatch})
			if apiStatus(errs[0]) != http.StatusConflict || apiStatus(errs[1]) != http.StatusBadRequest {
				t.Fatalf("results %v; want 409 and 400", errs)
			}
			wantEntries := before
			if !ready {
				wantEntries++ // the taken name went to the log
			}
			if len(l.entries) != wantEntries {
				t.Fatalf("%d entries after the refused writes; want %d", len(l.entries), wantEntries)
			}
			if got := l.secretNames(); got != "[taken]" {
				t.Errorf("secrets %s; want [taken]", got)
			}
		})
	}
}

// TestBatchProposerChecksOnlyAStateAtTheCommitIndex: a leader whose state
// lags its commit index does not refuse a write before the log. A
// follower may already have shown a client the committed entry the
// leader has not applied (the secret created), so a "not found" from the
// leader's older state would contradict what that client saw; the write
// goes to the log and the FSM decides in log order. Once the state has
// caught up, the same write is refused before the log.
func TestBatchProposerChecksOnlyAStateAtTheCommitIndex(t *testing.T) {
	l := newFakeLog(t, fsm.Level3)
	p := newProposer(l, time.Second)
	rm, err := fsm.Encode(&fsm.SecretRemove{RemoveCmd: secrets.RemoveCmd{Ref: "committed-elsewhere"}})
	if err != nil {
		t.Fatal(err)
	}
	l.behind = 1
	before := len(l.entries)
	p.apply([][]byte{rm})
	if len(l.entries) != before+1 {
		t.Fatalf("a leader behind its commit index refused the write before the log (%d entries; want %d)", len(l.entries), before+1)
	}
	l.behind = 0
	before = len(l.entries)
	if errs := p.apply([][]byte{rm}); apiStatus(errs[0]) != http.StatusNotFound {
		t.Fatalf("result %v; want 404", errs[0])
	}
	if len(l.entries) != before {
		t.Fatalf("a leader at its commit index sent a failing write to the log (%d entries; want %d)", len(l.entries), before)
	}
}
