package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/ca"
)

// The level table and the decoder agree: this build's level knows exactly
// the type versions Decode reads.
func TestCurrentLevelKnowsWhatDecodeReads(t *testing.T) {
	got := map[CommandVersion]bool{}
	for _, cv := range Commands(CurrentLevel) {
		got[cv] = true
	}
	want := map[CommandVersion]bool{}
	for typ, reg := range registry {
		oldest, ok := oldestVersion[typ]
		if !ok {
			oldest = reg.version
		}
		for v := oldest; v <= reg.version; v++ {
			want[CommandVersion{typ, v}] = true
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Commands(CurrentLevel) = %v; want %v", got, want)
	}
	for l := LowestLevel; l < CurrentLevel; l++ {
		if len(Commands(l)) >= len(Commands(l+1)) {
			t.Errorf("level %d knows no more than level %d", l+1, l)
		}
	}
}

// The leader's choice of encodings at each cluster version: what every
// manager of that level knows, or an older version, or a refusal.
func TestEncodingAtEachClusterVersion(t *testing.T) {
	create := secretCmd("s1", "db")
	v2 := mustEncode(t, create)
	level := mustEncode(t, &NodeLevel{ID: "n1", Level: CurrentLevel})
	plain := mustEncode(t, &NodeUpdate{ID: "n1", Addr: "127.0.0.1:1"})
	tests := []struct {
		cv            int
		createVersion uint8 // secret.create proposed at
		batch         bool
		nodeLevel     bool // node.level may be proposed
	}{
		{Level1, 1, false, false},
		{Level2, 2, false, false},
		{Level3, 2, true, false},
		{Level4, 2, true, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("cluster version %d", tt.cv), func(t *testing.T) {
			b, err := Downgrade(v2, tt.cv)
			if err != nil {
				t.Fatal(err)
			}
			if b[3] != tt.createVersion {
				t.Errorf("secret.create proposed at version %d; want %d", b[3], tt.createVersion)
			}
			if _, bad := unknownIn(b, tt.cv); bad {
				t.Errorf("a manager of level %d cannot apply the secret.create chosen for it", tt.cv)
			}
			c, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, create) {
				t.Errorf("secret.create at version %d decodes to %+v; want %+v", b[3], c, create)
			}
			if got := BatchAllowed(tt.cv); got != tt.batch {
				t.Errorf("BatchAllowed = %v; want %v", got, tt.batch)
			}
			lb, err := Downgrade(level, tt.cv)
			switch {
			case tt.nodeLevel && (err != nil || !bytes.Equal(lb, level)):
				t.Errorf("node.level: got %v; want it unchanged", err)
			case !tt.nodeLevel && !errors.Is(err, ErrClusterVersion):
				t.Errorf("node.level: got %v; want ErrClusterVersion", err)
			}
			if pb, err := Downgrade(plain, tt.cv); err != nil || !bytes.Equal(pb, plain) {
				t.Errorf("node.update: got %v; want it unchanged", err)
			}
		})
	}
}

// An entry of a type or version this build does not know stops the FSM
// at that index: it keeps its state, applies nothing after it, takes no
// snapshot, and a build that knows the entry applies the same log whole.
func TestNeedsUpgradeStopsAtTheEntry(t *testing.T) {
	later := mustEncode(t, &NodeAdd{Node: Node{ID: "w9", Role: ca.RoleWorker}})
	batch, err := EncodeBatch([][]byte{mustEncode(t, secretCmd("s1", "a")), {1, 0x7f, 0x01, 1, '{', '}'}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		level int
		entry []byte
		want  CommandVersion
	}{
		{"unknown type", CurrentLevel, []byte{1, 0x7f, 0x01, 1, '{', '}'}, CommandVersion{0x7f01, 1}},
		{"newer version", CurrentLevel, []byte{1, 0, byte(TypeNodeAdd), 9, '{', '}'}, CommandVersion{TypeNodeAdd, 9}},
		{"unknown type inside a batch", CurrentLevel, batch, CommandVersion{0x7f01, 1}},
		{"newer envelope", CurrentLevel, []byte{2, 0, byte(TypeNodeAdd), 1, '{', '}'}, CommandVersion{TypeNodeAdd, 1}},
		{"batch at level 2", Level2, mustEncodeBatch(t, secretCmd("s1", "a"), secretCmd("s2", "b")), CommandVersion{TypeBatch, 1}},
		{"secret.create v2 at level 1", Level1, mustEncode(t, secretCmd("s1", "a")), CommandVersion{TypeSecretCreate, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewAtLevel(nil, tt.level)
			applyAll(t, f, initCmd(), &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}})
			before := snapshotBytes(t, f)
			r := f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: tt.entry}).(*Result)
			var ue *UpgradeError
			if !errors.As(r.Err, &ue) || !errors.Is(r.Err, ErrNeedsUpgrade) {
				t.Fatalf("got %v; want an UpgradeError", r.Err)
			}
			if ue.Index != 3 || ue.Command != tt.want || ue.Level != tt.level {
				t.Errorf("got %+v; want index 3, %s, level %d", ue, tt.want, tt.level)
			}
			rs := f.ApplyBatch([]*raft.Log{{Index: 4, Type: raft.LogCommand, Data: later}, {Index: 5, Type: raft.LogNoop}})
			for i, r := range rs {
				if !errors.Is(r.(*Result).Err, ErrNeedsUpgrade) {
					t.Errorf("entry %d after the stop: got %v; want ErrNeedsUpgrade", 4+i, r.(*Result).Err)
				}
			}
			if f.Index() != 2 {
				t.Errorf("applied index %d; want 2", f.Index())
			}
			if got := f.NeedsUpgrade(); got == nil || got.Index != 3 {
				t.Errorf("NeedsUpgrade() = %v; want index 3", got)
			}
			if _, err := f.Snapshot(); !errors.Is(err, ErrNeedsUpgrade) {
				t.Errorf("Snapshot: got %v; want ErrNeedsUpgrade", err)
			}
			f.Read(func(s *State, _ uint64) {
				if _, ok := s.Nodes["w9"]; ok {
					t.Error("an entry after the stop was applied")
				}
			})
			// The state is as it was: compare through a copy restored
			// from the data export (Snapshot refuses while stopped).
			data, idx, err := f.SnapshotData()
			if err != nil || idx != 2 {
				t.Fatalf("SnapshotData: index %d, %v", idx, err)
			}
			g := New(nil)
			if err := g.Restore(nopCloser{bytes.NewReader(data)}); err != nil {
				t.Fatal(err)
			}
			if got := snapshotBytes(t, g); !bytes.Equal(stripIndex(got), stripIndex(before)) {
				t.Errorf("state changed at the stop:\n%s\nwant\n%s", got, before)
			}
		})
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func mustEncodeBatch(t *testing.T, cmds ...Command) []byte {
	t.Helper()
	encs := make([][]byte, len(cmds))
	for i, c := range cmds {
		encs[i] = mustEncode(t, c)
	}
	b, err := EncodeBatch(encs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A manager restarted on a build that knows the entry applies the same
// log from where it stopped, and reaches the state of one that never
// stopped.
func TestNeedsUpgradeResumesOnANewerLevel(t *testing.T) {
	log := [][]byte{
		mustEncode(t, initCmd()),
		mustEncodeBatch(t, secretCmd("s1", "a"), secretCmd("s2", "b")),
		mustEncode(t, &NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}}),
	}
	apply := func(f *FSM) {
		for i, b := range log {
			f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b})
		}
	}
	old := NewAtLevel(nil, Level2)
	apply(old)
	if st := old.NeedsUpgrade(); st == nil || st.Index != 2 || old.Index() != 1 {
		t.Fatalf("level 2: stopped at %v, applied %d; want entry 2, applied 1", st, old.Index())
	}
	upgraded, reference := New(nil), New(nil)
	apply(upgraded)
	apply(reference)
	if upgraded.NeedsUpgrade() != nil || upgraded.Index() != 3 {
		t.Fatalf("upgraded: stopped at %v, applied %d", upgraded.NeedsUpgrade(), upgraded.Index())
	}
	if !bytes.Equal(snapshotBytes(t, upgraded), snapshotBytes(t, reference)) {
		t.Error("the upgraded FSM's state differs")
	}
}

// Check refuses what this build does not know, so that the leader never
// proposes an entry that would stop every manager.
func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		b    []byte
		want error
	}{
		{[]byte{1, 0x7f, 0x01, 1, '{', '}'}, ErrUnknownCommand},
		{[]byte{1, 0, byte(TypeNodeAdd), 9, '{', '}'}, ErrUnsupportedVersion},
		{mustEncode(t, secretCmd("s1", "a")), nil},
	} {
		if err := Check(tt.b); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("Check(%x): got %v; want %v", tt.b[:4], err, tt.want)
		}
	}
}

// FuzzDowngrade: Check, Downgrade and the FSM's own check never panic on
// any bytes, and what Downgrade returns for a cluster version, a manager
// of that level can apply.
func FuzzDowngrade(f *testing.F) {
	f.Add(mustEncodeF(f, secretCmd("s1", "a")), uint8(Level1))
	f.Add([]byte{1, 0x7f, 0x01, 1, '{', '}'}, uint8(Level4))
	f.Add([]byte{1, 0, byte(TypeBatch), 1, 0}, uint8(Level3))
	f.Fuzz(func(t *testing.T, b []byte, level uint8) {
		cv := int(level)%CurrentLevel + 1
		_ = Check(b)
		out, err := Downgrade(b, cv)
		if err != nil {
			return
		}
		if u, ok := unknownIn(out, cv); ok {
			t.Fatalf("Downgrade(%x, %d) = %x, which holds %s", b, cv, out, u)
		}
	})
}

func mustEncodeF(f *testing.F, c Command) []byte {
	b, err := Encode(c)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// TestCertRecordWaitsForLevel4: below cluster version 4 the leader
// proposes node commands without the certificate record, at version 1,
// which every manager applies; from 4 on, with it.
func TestCertRecordWaitsForLevel4(t *testing.T) {
	cmds := []Command{
		&NodeUpdate{ID: "n1", CertExpiresAt: time.Unix(1_800_000_000, 0).UTC(), CertSerial: "ab", CertKeySHA256: "cd"},
		&NodeAdd{Node: Node{ID: "n1", Role: ca.RoleWorker, CertSerial: "ab", CertKeySHA256: "cd"}},
		&ClusterInit{Cluster: Cluster{ID: "c1"}, First: Node{ID: "n1", Role: ca.RoleManager, CertSerial: "ab", CertKeySHA256: "cd"}},
	}
	for _, c := range cmds {
		b := mustEncode(t, c)
		if b[3] != 2 {
			t.Fatalf("%s with a certificate record encodes at version %d; want 2", c.Type(), b[3])
		}
		for _, cv := range []int{Level1, Level2, Level3} {
			down, err := Downgrade(b, cv)
			if err != nil {
				t.Fatalf("%s at cluster version %d: %v", c.Type(), cv, err)
			}
			if down[3] != 1 || strings.Contains(string(down), "cert_serial") {
				t.Errorf("%s at cluster version %d: version %d, %q; want version 1 without the record", c.Type(), cv, down[3], down)
			}
			if _, bad := unknownIn(down, cv); bad {
				t.Errorf("%s at cluster version %d: a manager of that level cannot apply it", c.Type(), cv)
			}
		}
		if same, err := Downgrade(b, Level4); err != nil || string(same) != string(b) {
			t.Errorf("%s at cluster version 4: changed (%v)", c.Type(), err)
		}
	}
}
