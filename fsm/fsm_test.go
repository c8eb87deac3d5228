package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/overlaykeys"
	"github.com/holdfast/holdfast/secrets"
)

var t0 = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func initCmd() *ClusterInit {
	return &ClusterInit{
		Cluster: Cluster{ID: "c1", CreatedAt: t0, Settings: Settings{CertExpiry: 2160 * time.Hour, KeyRotation: 12 * time.Hour}, WorkerToken: "w", ManagerToken: "m"},
		First:   Node{ID: "n1", Role: ca.RoleManager, Addr: "127.0.0.1:4242", CreatedAt: t0},
	}
}

// applyAll applies commands at consecutive indexes and returns each result.
func applyAll(t *testing.T, f *FSM, cmds ...Command) []error {
	t.Helper()
	var errs []error
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatalf("encode %s: %v", c.Type(), err)
		}
		r := f.Apply(&raft.Log{Index: f.Index() + 1, Type: raft.LogCommand, Data: b}).(*Result)
		errs = append(errs, r.Err)
	}
	return errs
}

func TestApply(t *testing.T) {
	worker := &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker, Addr: "127.0.0.1:5000"}}
	mgr2 := &NodeAdd{Node: Node{ID: "n2", Role: ca.RoleManager}}
	tests := []struct {
		name  string
		setup []Command
		cmd   Command
		want  error
		check func(t *testing.T, s *State)
	}{
		{name: "init", cmd: initCmd(), check: func(t *testing.T, s *State) {
			if s.Cluster.ID != "c1" || s.Nodes["n1"].Role != ca.RoleManager {
				t.Errorf("got cluster %+v nodes %v; want c1 with manager n1", s.Cluster, s.Nodes)
			}
		}},
		{name: "init twice", setup: []Command{initCmd()}, cmd: initCmd(), want: ErrAlreadyInitialized},
		{name: "add before init", cmd: worker, want: ErrNotInitialized},
		{name: "init with bad expiry", cmd: func() Command {
			c := initCmd()
			c.Cluster.Settings.CertExpiry = time.Minute
			return c
		}(), want: ErrBadSetting},
		{name: "add worker", setup: []Command{initCmd()}, cmd: worker, check: func(t *testing.T, s *State) {
			if s.Nodes["w1"] == nil || s.Nodes["w1"].Role != ca.RoleWorker {
				t.Errorf("got %v; want worker w1", s.Nodes["w1"])
			}
		}},
		{name: "add twice", setup: []Command{initCmd(), worker}, cmd: worker, want: ErrNodeExists},
		{name: "add bad role", setup: []Command{initCmd()}, cmd: &NodeAdd{Node: Node{ID: "x", Role: "boss"}}, want: ErrBadRole},
		{name: "demote last manager", setup: []Command{initCmd()}, cmd: &NodeSetRole{ID: "n1", Role: ca.RoleWorker}, want: ErrLastManager},
		{name: "demote with two managers", setup: []Command{initCmd(), mgr2}, cmd: &NodeSetRole{ID: "n1", Role: ca.RoleWorker}, check: func(t *testing.T, s *State) {
			if s.Nodes["n1"].Role != ca.RoleWorker {
				t.Errorf("got role %s; want worker", s.Nodes["n1"].Role)
			}
		}},
		{name: "promote unknown", setup: []Command{initCmd()}, cmd: &NodeSetRole{ID: "zz", Role: ca.RoleManager}, want: ErrNodeNotFound},
		{name: "remove worker", setup: []Command{initCmd(), worker}, cmd: &NodeRemove{ID: "w1", Until: t0.Add(time.Hour)}, check: func(t *testing.T, s *State) {
			if _, ok := s.Nodes["w1"]; ok {
				t.Error("w1 still present")
			}
			if !s.IsRemoved("w1", t0) || s.IsRemoved("w1", t0.Add(2*time.Hour)) {
				t.Error("deny list does not hold w1 until its cert expiry")
			}
		}},
		{name: "re-add removed", setup: []Command{initCmd(), worker, &NodeRemove{ID: "w1", Until: t0}}, cmd: worker, want: ErrNodeRemoved},
		{name: "remove last manager", setup: []Command{initCmd()}, cmd: &NodeRemove{ID: "n1", Force: true}, want: ErrLastManager},
		{name: "rotate token", setup: []Command{initCmd()}, cmd: &TokenRotate{Role: ca.RoleWorker, Token: "w2"}, check: func(t *testing.T, s *State) {
			if s.Cluster.WorkerToken != "w2" || s.Cluster.ManagerToken != "m" {
				t.Errorf("got tokens %q %q; want w2 m", s.Cluster.WorkerToken, s.Cluster.ManagerToken)
			}
		}},
		{name: "settings below minimum", setup: []Command{initCmd()}, cmd: &SettingsUpdate{Settings: Settings{CertExpiry: time.Hour, KeyRotation: time.Second}}, want: ErrBadSetting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil)
			for i, err := range applyAll(t, f, tt.setup...) {
				if err != nil {
					t.Fatalf("setup %d: %v", i, err)
				}
			}
			var before []byte
			if tt.want != nil {
				before = snapshotBytes(t, f)
			}
			err := applyAll(t, f, tt.cmd)[0]
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v; want %v", err, tt.want)
			}
			if tt.want != nil {
				if after := snapshotBytes(t, f); !bytes.Equal(stripIndex(before), stripIndex(after)) {
					t.Errorf("failed command changed state:\nbefore %s\nafter  %s", before, after)
				}
			}
			if tt.check != nil {
				f.Read(func(s *State, _ uint64) { tt.check(t, s) })
			}
		})
	}
}

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return s.(*snapshot).encode()
}

// stripIndex removes the applied index, which a failed command still advances.
func stripIndex(b []byte) []byte {
	i := bytes.Index(b, []byte(`"state":`))
	return b[i:]
}

func TestUnknownCommandIsAnErrorNotAPanic(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want error
	}{
		// What this build does not know stops it (levels_test.go).
		{"unknown type", []byte{1, 0xff, 0xee, 1, '{', '}'}, ErrNeedsUpgrade},
		{"newer version", []byte{1, 0, byte(TypeNodeAdd), 9, '{', '}'}, ErrNeedsUpgrade},
		// What no build wrote is refused alike on every replica.
		{"bad envelope", []byte{0, 0, 1, 1}, ErrMalformedCommand},
		{"short", []byte{1}, ErrMalformedCommand},
		{"bad json", append([]byte{1, 0, byte(TypeNodeAdd), 1}, "{nope"...), ErrMalformedCommand},
		{"unknown field", append([]byte{1, 0, byte(TypeNodeAdd), 1}, `{"evil":1}`...), ErrMalformedCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil)
			applyAll(t, f, initCmd())
			r := f.Apply(&raft.Log{Index: f.Index() + 1, Type: raft.LogCommand, Data: tt.data}).(*Result)
			if !errors.Is(r.Err, tt.want) {
				t.Errorf("got %v; want %v", r.Err, tt.want)
			}
		})
	}
}

func TestSnapshotRestore(t *testing.T) {
	f := New(nil)
	applyAll(t, f, initCmd(), &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}}, &NodeRemove{ID: "w1", Until: t0})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	changed := g.Changed()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Error("Restore did not signal a change")
	}
	if got, want := snapshotBytes(t, g), snapshotBytes(t, f); !bytes.Equal(got, want) {
		t.Errorf("restored state differs:\ngot  %s\nwant %s", got, want)
	}
	if g.Index() != 3 {
		t.Errorf("got index %d; want 3", g.Index())
	}
	// Format 1 (JSON, as data dirs of earlier builds and backups hold)
	// restores to the same state.
	v1, index, err := f.SnapshotData()
	if err != nil || index != 3 || !bytes.HasPrefix(v1, []byte(`{"format":"holdfast-fsm-snapshot/1"`)) {
		t.Fatalf("SnapshotData: %v, index %d, %.40s", err, index, v1)
	}
	h := New(nil)
	if err := h.Restore(io.NopCloser(bytes.NewReader(v1))); err != nil {
		t.Fatal(err)
	}
	if got, want := snapshotBytes(t, h), snapshotBytes(t, f); !bytes.Equal(got, want) {
		t.Errorf("state restored from format 1 differs:\ngot  %q\nwant %q", got, want)
	}
	if js, err := SnapshotJSON(snapshotBytes(t, f)); err != nil || !bytes.Equal(js, v1) {
		t.Errorf("SnapshotJSON of format 2 is not the format 1 document: %v", err)
	}
	for _, bad := range [][]byte{[]byte(`{"format":"other"}`), []byte("HFSNAP2\n"), []byte("HFSNAP2\n\x05{}"), append([]byte("HFSNAP2\n\x02{}"), 1, 5)} {
		if err := New(nil).Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("restore of %q: %v; want ErrBadSnapshot", bad, err)
		}
	}
	if err := New(nil).Restore(io.NopCloser(bytes.NewReader([]byte(`{"format":"other"}`)))); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("got %v; want ErrBadSnapshot", err)
	}
}

type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func FuzzDecode(f *testing.F) {
	rot, _ := overlaykeys.NewRotation(overlaykeys.IPsec, nil, t0, nil)
	for _, c := range []Command{initCmd(), &NodeAdd{Node: Node{ID: "a", Role: ca.RoleWorker}}, &TokenRotate{Role: ca.RoleManager, Token: "t"},
		&KeysRotate{rot}, &NodeUpdate{ID: "a", GossipAddr: "10.0.0.1:4243"}, &NodeAddr{ID: "a", Addr: "10.0.0.2:4242"},
		&SecretCreate{secrets.CreateCmd{ID: "s1", Name: "n", Data: []byte{0, 1, 2}, Labels: map[string]string{"a": "b"}, CreatedAt: t0}}} {
		b, _ := Encode(c)
		f.Add(b)
	}
	sc, _ := Encode(&SecretCreate{secrets.CreateCmd{ID: "s2", Name: "m", Data: []byte{3}, CreatedAt: t0}})
	nu, _ := Encode(&NodeUpdate{ID: "a", GossipAddr: "10.0.0.1:4243"})
	batch, _ := EncodeBatch([][]byte{sc, nu})
	f.Add(batch)
	f.Add([]byte{1, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes must encode again and decode to the same command.
		b, err := Encode(c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := Decode(b)
		if err != nil {
			t.Fatalf("decode of re-encoded command: %v", err)
		}
		b2, _ := Encode(c2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("not stable:\n%q\n%q", b, b2)
		}
		// And applying it to a fresh or initialized state never panics.
		f := New(nil)
		f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data})
	})
}

// FuzzRestore feeds arbitrary snapshots to Restore: it never panics, and a
// snapshot it refuses leaves the state as it was.
func FuzzRestore(f *testing.F) {
	good := New(nil)
	for i, c := range []Command{initCmd(), &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}}} {
		b, _ := Encode(c)
		good.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b})
	}
	snap, _ := good.Snapshot()
	f.Add(snap.(*snapshot).encode())
	v1, _, _ := good.SnapshotData()
	f.Add(v1)
	f.Add([]byte(`{"format":"holdfast-fsm-snapshot/1","index":3,"state":{"nodes":{},"removed":{},"secrets":{"secrets":[]}}}`))
	f.Add([]byte(`{"format":"holdfast-fsm-snapshot/1","state":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := New(nil)
		applyAll(t, g, initCmd())
		before := snapshotBytes(t, g)
		if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			if after := snapshotBytes(t, g); !bytes.Equal(before, after) {
				t.Fatalf("a refused snapshot changed the state")
			}
			return
		}
		// What restores snapshots again to the same bytes.
		again := snapshotBytes(t, g)
		h := New(nil)
		if err := h.Restore(io.NopCloser(bytes.NewReader(again))); err != nil {
			t.Fatalf("restore of a re-taken snapshot: %v", err)
		}
		if b := snapshotBytes(t, h); !bytes.Equal(b, again) {
			t.Fatalf("not stable:\n%s\n%s", again, b)
		}
	})
}
