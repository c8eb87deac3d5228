package manager

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/overlaykeys"
	"github.com/holdfast/holdfast/secrets"
	"github.com/holdfast/holdfast/transport"
)

// Unit tests of the loop components, without a cluster: each component
// gets a fake state and fake actions through its dependencies.

func TestLoopTable(t *testing.T) {
	seen := map[string]bool{}
	for _, spec := range loopTable() {
		if spec.name == "" || seen[spec.name] {
			t.Errorf("loop name %q is empty or repeated", spec.name)
		}
		seen[spec.name] = true
		if spec.leaderOnly && spec.where != managersOnly {
			t.Errorf("loop %q is leader-only but runs on %v: only managers lead", spec.name, spec.where)
		}
		if spec.build == nil {
			t.Errorf("loop %q has no constructor", spec.name)
		}
	}
	for _, name := range []string{"role-supervisor", "expired-retry", "key-rotation", "ca-finish", "ca-sync", "renewal", "unlock-key", "dek-rotation", "secret-delivery", "gossip", "levels", "own-role", "ask-own-role", "follow-cluster", "own-new-address", "clock-skew", "slow-disk-handover", "finish-removals"} {
		if !seen[name] {
			t.Errorf("loop table has no %q", name)
		}
	}
}

// fakeState is a stateView over a State the test changes.
type fakeState struct {
	mu sync.Mutex
	s  *fsm.State
	ch chan struct{}
	// iter, when set, receives at every Changed call, once the caller
	// holds the channel: a loop calls it once per turn, first, so after
	// a receive the next change ends that turn.
	iter chan struct{}
}

func newFakeState(s *fsm.State) *fakeState { return &fakeState{s: s, ch: make(chan struct{})} }

func (f *fakeState) Read(fn func(*fsm.State, uint64)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.s, 1)
}

func (f *fakeState) Changed() <-chan struct{} {
	f.mu.Lock()
	ch := f.ch
	f.mu.Unlock()
	if f.iter != nil {
		f.iter <- struct{}{}
	}
	return ch
}

func (f *fakeState) update(fn func(*fsm.State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.s)
	close(f.ch)
	f.ch = make(chan struct{})
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestKeyRotatorRotateDue drives one leader's rotateDue by hand: what it
// proposes, how it takes a stale or failed proposal, and how long it
// says to wait.
func TestKeyRotatorRotateDue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const every = 12 * time.Hour
	st := newFakeState(&fsm.State{Cluster: &fsm.Cluster{Settings: fsm.Settings{KeyRotation: every}}, Keys: overlaykeys.Keyrings{}})
	now := t0
	var proposed []overlaykeys.Subsystem
	var fail error
	k := &keyRotator{
		state:   st,
		leading: func() bool { return true },
		propose: func(ctx context.Context, b []byte) error {
			if fail != nil {
				return fail
			}
			cmd, err := fsm.Decode(b)
			if err != nil {
				return err
			}
			rot := cmd.(*fsm.KeysRotate).Rotation
			proposed = append(proposed, rot.Subsystem)
			var aerr error
			st.update(func(s *fsm.State) { aerr = s.Keys.Apply(rot) })
			return aerr
		},
		now: func() time.Time { return now },
		log: discardLogger(),
	}
	ctx := context.Background()

	if d := k.rotateDue(ctx); d != 0 || !slices.Equal(proposed, overlaykeys.Subsystems) {
		t.Fatalf("first look: wait %s, proposed %v; want 0 and %v (empty rings are due)", d, proposed, overlaykeys.Subsystems)
	}
	proposed = nil
	if d := k.rotateDue(ctx); d != time.Hour || len(proposed) != 0 {
		t.Fatalf("right after: wait %s, proposed %v; want 1h (the longest wait) and nothing", d, proposed)
	}
	now = t0.Add(every - time.Minute)
	if d := k.rotateDue(ctx); d != time.Minute || len(proposed) != 0 {
		t.Fatalf("a minute before: wait %s, proposed %v; want 1m and nothing", d, proposed)
	}
	now = t0.Add(every)
	fail = errors.New("no quorum")
	if d := k.rotateDue(ctx); d != time.Second {
		t.Fatalf("failed proposal: wait %s; want 1s (retry)", d)
	}
	fail = overlaykeys.ErrStale
	if d := k.rotateDue(ctx); d != 0 {
		t.Fatalf("stale proposal (another leader rotated): wait %s; want 0 (look again)", d)
	}
	fail = nil
	if d := k.rotateDue(ctx); d != 0 || !slices.Equal(proposed, overlaykeys.Subsystems) {
		t.Fatalf("due again: wait %s, proposed %v; want 0 and %v", d, proposed, overlaykeys.Subsystems)
	}
}

// TestKeyRotatorActsOnlyWhileLeading: a follower's rotator proposes
// nothing however due the rings are.
func TestKeyRotatorActsOnlyWhileLeading(t *testing.T) {
	st := newFakeState(&fsm.State{Cluster: &fsm.Cluster{Settings: fsm.Settings{KeyRotation: time.Hour}}, Keys: overlaykeys.Keyrings{}})
	kick := make(chan struct{})
	proposed := make(chan struct{}, 8)
	k := &keyRotator{
		state:   st,
		leading: func() bool { return false },
		propose: func(context.Context, []byte) error { proposed <- struct{}{}; return nil },
		now:     time.Now,
		kick:    kick,
		log:     discardLogger(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- k.Run(ctx) }()
	kick <- struct{}{} // the loop has looked once and waits again
	kick <- struct{}{}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v; want context.Canceled", err)
	}
	if len(proposed) != 0 {
		t.Errorf("a follower proposed %d rotations; want none", len(proposed))
	}
}

// TestOwnRoleWatcher: a manager's own record asks it to become a worker
// when demoted, and to wipe itself when removed, after which the watcher
// stops.
func TestOwnRoleWatcher(t *testing.T) {
	st := newFakeState(&fsm.State{Nodes: map[string]*fsm.Node{"m1": {ID: "m1", Role: roleManager}}, Removed: map[string]time.Time{}})
	asked := make(chan ca.RoleTarget, 8)
	w := &ownRoleWatcher{state: st, self: "m1", ask: func(t ca.RoleTarget) { asked <- t }}
	done := make(chan error)
	go func() { done <- w.Run(context.Background()) }()
	st.update(func(s *fsm.State) { s.Nodes["m1"].Role = roleWorker })
	if got := <-asked; got != (ca.RoleTarget{Role: roleWorker}) {
		t.Fatalf("after demotion asked %+v; want %q", got, roleWorker)
	}
	st.update(func(s *fsm.State) { s.Removed["m1"] = time.Now().Add(time.Hour) })
	for got := range asked {
		if got == (ca.RoleTarget{Removed: true}) {
			break
		}
		if got != (ca.RoleTarget{Role: roleWorker}) {
			t.Fatalf("asked %+v; want %q, then removed", got, roleWorker)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Run after removal = %v; want nil", err)
	}
}

// fakeLife records what the role supervisor asks of the node.
type fakeLife struct {
	inc   *incarnation
	calls []string
}

func (f *fakeLife) current() *incarnation { return f.inc }
func (f *fakeLife) stop(graceful bool)    { f.calls = append(f.calls, "stop"); f.inc = nil }
func (f *fakeLife) wipeState() error      { f.calls = append(f.calls, "wipe"); return nil }
func (f *fakeLife) startLoops(context.Context, *incarnation) {
	f.calls = append(f.calls, "startLoops")
}
func (f *fakeLife) startRaft(*incarnation, raftMode) (*raftNode, error) {
	f.calls = append(f.calls, "startRaft")
	return nil, errors.New("not in this test")
}
func (f *fakeLife) removeRaftState() error { f.calls = append(f.calls, "removeRaft"); return nil }
func (f *fakeLife) becomeVoter(context.Context, *incarnation) error {
	f.calls = append(f.calls, "becomeVoter")
	return nil
}
func (f *fakeLife) saveNodeInfo(*nodeInfo) error { f.calls = append(f.calls, "save"); return nil }

// roleRemovedLabel stands for a removal in TestRoleSupervisorReconcile's table.
const roleRemovedLabel = "removed"

// TestRoleSupervisorReconcile checks what reconcile does for the steps
// that need no certificate: nothing, or wiping a removed node; and that a
// switch first asks for a certificate for the new role, doing nothing
// else when the cluster answers with another role.
func TestRoleSupervisorReconcile(t *testing.T) {
	tests := []struct {
		name     string
		have     ca.Role
		want     string  // a role, or roleRemovedLabel
		answer   ca.Role // the role a renewal answers with
		calls    []string
		renewals int
		wantRole string // inc.wantRole after: a role, or roleRemovedLabel
	}{
		{"nothing asked", roleWorker, "", "", nil, 0, ""},
		{"same role", roleWorker, string(roleWorker), "", nil, 0, string(roleWorker)},
		{"removed", roleWorker, roleRemovedLabel, "", []string{"stop", "wipe"}, 0, roleRemovedLabel},
		{"promotion the cluster took back", roleWorker, string(roleManager), roleWorker, nil, 1, string(roleWorker)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc := &incarnation{info: &nodeInfo{NodeID: "n1", Role: tt.have}}
			switch tt.want {
			case "":
			case roleRemovedLabel:
				inc.wantRole.StoreRemoved()
			default:
				inc.wantRole.Store(ca.Role(tt.want))
			}
			life := &fakeLife{inc: inc}
			renewals := 0
			s := &roleSupervisor{
				life:     life,
				saveInfo: life.saveNodeInfo,
				renew: func(context.Context, *incarnation, api.RenewRequest) (*api.RenewResponse, error) {
					renewals++
					return &api.RenewResponse{Role: tt.answer}, nil
				},
				log: discardLogger(),
			}
			if err := s.reconcile(context.Background()); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
			if !slices.Equal(life.calls, tt.calls) || renewals != tt.renewals {
				t.Errorf("calls %v, %d renewals; want %v, %d", life.calls, renewals, tt.calls, tt.renewals)
			}
			got, removed := inc.wantRole.Load()
			if removed {
				got = roleRemovedLabel
			}
			if string(got) != tt.wantRole {
				t.Errorf("wantRole = %q; want %q", got, tt.wantRole)
			}
		})
	}
}

// fakeFetcher serves secrets by ID and counts fetches.
type fakeFetcher struct {
	data    map[string]*api.SecretData
	fetched []string
}

func (f *fakeFetcher) FetchSecret(_ context.Context, id string) (*api.SecretData, error) {
	f.fetched = append(f.fetched, id)
	d, ok := f.data[id]
	if !ok {
		return nil, errors.New("not granted")
	}
	return d, nil
}

// TestWorkerDeliveryFetchesOnlyWhatItLacks: a worker fetches each granted
// secret once, fetches again only a secret whose digest changed, retries
// after a failed fetch, and writes exactly the granted set.
func TestWorkerDeliveryFetchesOnlyWhatItLacks(t *testing.T) {
	dir := t.TempDir()
	w := &workerDelivery{out: secretWriter{dir: secrets.Dir{Path: dir}, log: discardLogger()}, fetchTimeout: time.Second}
	mk := func(id, name, data string) (*api.SecretData, api.SecretRef) {
		s, err := secrets.New(id, name, []byte(data), nil, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return &api.SecretData{ID: id, Name: name, Digest: s.Digest, Data: s.Data}, api.SecretRef{ID: id, Name: name, Digest: s.Digest}
	}
	dbData, db := mk("1", "db", "pw")
	tlsData, tls := mk("2", "tls", "key")
	f := &fakeFetcher{data: map[string]*api.SecretData{"1": dbData}}
	ctx := context.Background()

	if w.deliver(ctx, f, []api.SecretRef{db, tls}) {
		t.Fatal("deliver reported success with a secret it could not fetch")
	}
	f.data["2"] = tlsData
	if !w.deliver(ctx, f, []api.SecretRef{db, tls}) {
		t.Fatal("deliver failed with every secret fetchable")
	}
	if want := []string{"1", "2", "2"}; !slices.Equal(f.fetched, want) {
		t.Errorf("fetched %v; want %v (the held one not again)", f.fetched, want)
	}
	f.fetched = nil
	if !w.deliver(ctx, f, []api.SecretRef{tls, db}) || len(f.fetched) != 0 {
		t.Errorf("the same set again fetched %v; want nothing", f.fetched)
	}
	if !w.deliver(ctx, f, []api.SecretRef{tls}) || len(f.fetched) != 0 {
		t.Errorf("a revocation fetched %v; want nothing", f.fetched)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"tls"}) {
		t.Errorf("secrets dir holds %v; want [tls]", names)
	}
}

// TestCASyncerSteps follows one node through a CA rotation with fake
// files and fake cluster calls: it renews onto the new root, rewrites its
// roots and chain, then reports, in that order; a renewal that does not
// give a new-root certificate stops it before it reports; a node that is
// current does nothing.
func TestCASyncerSteps(t *testing.T) {
	now := time.Now()
	clusterID := ca.NewID()
	oldRoot, err := ca.NewRoot(clusterID, now)
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := ca.NewRotationRoot(clusterID, now)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := ca.NewRotation(oldRoot, newRoot, now)
	if err != nil {
		t.Fatal(err)
	}
	id := ca.Identity{NodeID: ca.NewID(), Role: ca.RoleWorker, ClusterID: clusterID}
	// issue gives a certificate from root; from the new root, as a
	// renewal answers during the rotation (chain and both roots) when
	// chained, or alone with the old root's trust otherwise.
	issue := func(root *ca.Root, chained bool) *keyfiles.Certs {
		key, err := ca.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := ca.NewCSR(key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := root.Issue(csr, id, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := ca.MarshalKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if root == newRoot {
			if chained {
				return &keyfiles.Certs{RootPEM: rot.TrustPEM(), CertPEM: rot.ChainPEM(cert), KeyPEM: keyPEM}
			}
			return &keyfiles.Certs{RootPEM: rot.TrustPEM(), CertPEM: cert, KeyPEM: keyPEM}
		}
		return &keyfiles.Certs{RootPEM: oldRoot.CertPEM(), CertPEM: cert, KeyPEM: keyPEM}
	}
	view := &api.CAView{TrustPEM: rot.TrustPEM(), IssuerDigest: newRoot.Digest(), ChainPEM: rot.ChainPEM(nil), RotationID: "r1"}

	tests := []struct {
		name       string
		renewFrom  *ca.Root // what a renewal issues from
		start      *ca.Root // what the node's certificate is from
		wantErr    bool
		wantCalls  []string
		wantIssuer *ca.Root
	}{
		{"rotation from the start", newRoot, oldRoot, false, []string{"renew", "report"}, newRoot},
		{"renewed, chain not yet written", newRoot, newRoot, false, []string{"save", "report"}, newRoot},
		{"renewal not from the new root", oldRoot, oldRoot, true, []string{"renew"}, oldRoot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := issue(tt.start, false)
			creds, err := transport.LoadCredentials(files.CertPEM, files.KeyPEM, files.RootPEM)
			if err != nil {
				t.Fatal(err)
			}
			store := transport.NewCredStore(creds)
			var calls []string
			var mu sync.Mutex
			c := &caSyncer{
				creds: store,
				renew: func(context.Context) error {
					calls = append(calls, "renew")
					files = issue(tt.renewFrom, true)
					cr, err := transport.LoadCredentials(files.CertPEM, files.KeyPEM, files.RootPEM)
					if err != nil {
						return err
					}
					store.Store(cr)
					return nil
				},
				closeIdle: func() {},
				loadCerts: func() (*keyfiles.Certs, error) { c := *files; return &c, nil },
				saveCerts: func(c *keyfiles.Certs) error { calls = append(calls, "save"); files = c; return nil },
				setCreds:  store.Store,
				certMu:    &mu,
				report:    func(_ context.Context, rotID string) error { calls = append(calls, "report"); return nil },
				log:       discardLogger(),
			}
			err = c.sync(context.Background(), view)
			if (err != nil) != tt.wantErr {
				t.Fatalf("sync = %v; want error %v", err, tt.wantErr)
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("calls %v; want %v", calls, tt.wantCalls)
			}
			if !ca.IssuedBy(store.Load().Cert.Leaf, tt.wantIssuer) {
				t.Errorf("the node's certificate is not from the expected root")
			}
			if tt.wantErr {
				return
			}
			// Now current: a second sync of the same view (recorded) does
			// nothing.
			calls = nil
			recorded := *view
			recorded.Converted = true
			if err := c.sync(context.Background(), &recorded); err != nil || len(calls) != 0 {
				t.Errorf("second sync: %v, calls %v; want nothing to do", err, calls)
			}
		})
	}
}

// TestCAFinisher: the leader finishes a rotation once no node is waited
// for, naming it and with join tokens pinning the new root; a follower,
// or a leader with a node still waited for, does not.
func TestCAFinisher(t *testing.T) {
	now := time.Now()
	newRoot, err := ca.NewRotationRoot(ca.NewID(), now)
	if err != nil {
		t.Fatal(err)
	}
	st := newFakeState(&fsm.State{
		Nodes: map[string]*fsm.Node{"m1": {ID: "m1", Role: roleManager}, "w1": {ID: "w1", Role: roleWorker}},
		CARotation: &fsm.CARotation{ID: "r1", NewDigest: newRoot.Digest(), NewCertPEM: newRoot.CertPEM(), NewKeyPEM: newRoot.KeyPEM(),
			StartedAt: now, Converted: map[string]bool{"m1": true}},
	})
	st.iter = make(chan struct{})
	var mu sync.Mutex
	leader := false
	var finished []*fsm.CARotateFinish
	f := &caFinisher{
		now:     time.Now,
		state:   st,
		leading: func() bool { mu.Lock(); defer mu.Unlock(); return leader },
		apply: func(_ context.Context, cmd fsm.Command) error {
			mu.Lock()
			defer mu.Unlock()
			finished = append(finished, cmd.(*fsm.CARotateFinish))
			return nil
		},
		log: discardLogger(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	<-st.iter // the first turn has started
	// step changes the state and returns once the loop has dealt with it:
	// the turn the change starts is over when a second change starts the
	// next one.
	step := func(fn func(*fsm.State)) {
		st.update(fn)
		<-st.iter
		st.update(func(*fsm.State) {})
		<-st.iter
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(finished) }

	step(func(s *fsm.State) { s.CARotation.Converted["w1"] = true })
	if n := count(); n != 0 {
		t.Fatalf("a follower finished the rotation %d times", n)
	}
	step(func(s *fsm.State) { delete(s.CARotation.Converted, "w1") })
	mu.Lock()
	leader = true
	mu.Unlock()
	step(func(*fsm.State) {})
	if n := count(); n != 0 {
		t.Fatalf("the leader finished %d times with a node still waited for", n)
	}
	step(func(s *fsm.State) { s.CARotation.Converted["w1"] = true })
	if count() == 0 {
		t.Fatal("the leader did not finish once every node converted")
	}
	mu.Lock()
	fin := finished[0]
	mu.Unlock()
	if fin.ID != "r1" {
		t.Errorf("finish names rotation %q; want r1", fin.ID)
	}
	for _, tok := range []string{fin.WorkerToken, fin.ManagerToken} {
		if pt, err := ca.ParseToken(tok); err != nil || pt.CADigest != newRoot.Digest() {
			t.Errorf("a join token does not pin the new root (%v)", err)
		}
	}
	cancel() // the turn in progress ends without calling Changed again
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v; want context.Canceled", err)
	}
}

// TestKEKConvergerConvergesOnTheCurrentKeyOnly: a manager whose applied
// state holds an old unlock key (a replay after a restart) re-wraps its
// files under the key it reads linearizably, never under the replayed
// one; and turning autolock off unwraps them. Real key files in a
// temporary directory; no raft (a plain log has no DEK to rotate).
func TestKEKConvergerConvergesOnTheCurrentKeyOnly(t *testing.T) {
	now := time.Now()
	clusterID := ca.NewID()
	root, err := ca.NewRoot(clusterID, now)
	if err != nil {
		t.Fatal(err)
	}
	id := ca.Identity{NodeID: ca.NewID(), Role: ca.RoleManager, ClusterID: clusterID}
	key, err := ca.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := root.Issue(csr, id, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	files := keyfiles.New(t.TempDir())
	if err := files.SaveCerts(id.NodeID, &keyfiles.Certs{RootPEM: root.CertPEM(), CertPEM: cert, KeyPEM: keyPEM}); err != nil {
		t.Fatal(err)
	}
	old, current := autolock.NewKey(), autolock.NewKey()
	st := newFakeState(&fsm.State{Cluster: &fsm.Cluster{UnlockKey: old.String()}})
	st.iter = make(chan struct{})
	var mu sync.Mutex
	linearized := current.String()
	reads := 0
	c := &kekConverger{
		state: st,
		self:  id.NodeID,
		files: files,
		currentKey: func(context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			reads++
			return linearized, nil
		},
		certMu: &sync.Mutex{},
		log:    discardLogger(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-st.iter
	st.update(func(*fsm.State) {}) // end the first turn
	<-st.iter

	if files.WrappedUnder(old.KEK()) {
		t.Error("the files were wrapped under the replayed key")
	}
	if !files.WrappedUnder(current.KEK()) {
		t.Error("the files are not wrapped under the current key")
	}
	if wrapped, err := files.Wrapped(); err != nil || !wrapped {
		t.Errorf("Wrapped() = %v, %v; want true", wrapped, err)
	}
	// The state catches up: nothing to do, and no linearizable read. (A
	// turn starting means the one before it is over: every turn that saw
	// the old key is over once the turn that sees the current one starts.)
	st.update(func(s *fsm.State) { s.Cluster.UnlockKey = current.String() })
	<-st.iter
	mu.Lock()
	before := reads
	mu.Unlock()
	st.update(func(*fsm.State) {})
	<-st.iter
	mu.Lock()
	if reads != before {
		t.Errorf("%d linearizable reads with the state already current; want none", reads-before)
	}
	// Autolock off.
	linearized = ""
	mu.Unlock()
	st.update(func(s *fsm.State) { s.Cluster.UnlockKey = "" })
	<-st.iter
	st.update(func(*fsm.State) {})
	<-st.iter
	if wrapped, err := files.Wrapped(); err != nil || wrapped {
		t.Errorf("after autolock off, Wrapped() = %v, %v; want false", wrapped, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v; want context.Canceled", err)
	}
}

// fakeLevelRaft is a raft configuration of three managers for the level
// prober: m1 (this one), m2 a voter, m3 being added (staging).
type fakeLevelRaft struct{ cv int }

func (f *fakeLevelRaft) leaderChanged() <-chan struct{} { return make(chan struct{}) }
func (f *fakeLevelRaft) isLeader() bool                 { return true }
func (f *fakeLevelRaft) servers() []raft.Server {
	return []raft.Server{
		{ID: "m1", Address: "a1", Suffrage: raft.Voter},
		{ID: "m2", Address: "a2", Suffrage: raft.Voter},
		{ID: "m3", Address: "a3", Suffrage: raft.Staging},
	}
}
func (f *fakeLevelRaft) ownLevel() *api.LevelInfo {
	return &api.LevelInfo{Level: fsm.CurrentLevel, Commands: commandNames(fsm.Commands(fsm.CurrentLevel))}
}
func (f *fakeLevelRaft) clusterVersion() int { return f.cv }

// TestLevelProberRecordsAnsweredLevels: the prober remembers every
// answer (keeping what it knew of a manager that does not answer), and
// the leader records the levels that differ from the node records, for
// voters only, and only once the cluster version knows node.level.
func TestLevelProberRecordsAnsweredLevels(t *testing.T) {
	cur := &api.LevelInfo{Level: fsm.CurrentLevel, Commands: commandNames(fsm.Commands(fsm.CurrentLevel))}
	st := newFakeState(&fsm.State{Nodes: map[string]*fsm.Node{
		"m1": {ID: "m1", Level: cur.Level, Commands: cur.Commands}, // recorded already
		"m2": {ID: "m2"},
		"m3": {ID: "m3"},
	}})
	var levels levelView
	levels.set("m3", cur) // known from its join
	var applied []*fsm.NodeLevel
	fr := &fakeLevelRaft{cv: fsm.LowestLevel}
	p := &levelProber{
		self: "m1", raft: fr, levels: &levels, state: st,
		needsUpgrade: func() *fsm.UpgradeError { return nil },
		ask: func(_ context.Context, addr string) (*api.LevelInfo, error) {
			if addr == "a2" {
				return cur, nil
			}
			return nil, errors.New("no answer")
		},
		apply: func(_ context.Context, cmd fsm.Command) error {
			applied = append(applied, cmd.(*fsm.NodeLevel))
			return nil
		},
		log: discardLogger(),
	}
	ctx := context.Background()
	p.probe(ctx)
	for _, id := range []string{"m1", "m2", "m3"} {
		if li, ok := levels.get(id); !ok || li.Level != cur.Level {
			t.Errorf("level of %s after a probe: %+v, %v; want level %d", id, li, ok, cur.Level)
		}
	}
	if fsm.Knows(fsm.LowestLevel, fsm.TypeNodeLevel, 1) {
		t.Skip("the lowest level already knows node.level: nothing to check below it")
	}
	if err := p.record(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("below node.level's level: record = %v, applied %v; want nothing", err, applied)
	}
	fr.cv = fsm.CurrentLevel
	if err := p.record(ctx); err != nil {
		t.Fatal(err)
	}
	if len(applied) != 1 || applied[0].ID != "m2" || applied[0].Level != cur.Level {
		t.Errorf("recorded %+v; want m2's level only (m1 is recorded, m3 is staging)", applied)
	}
}
