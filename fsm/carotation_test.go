package fsm

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
)

func TestCARotationCommands(t *testing.T) {
	clusterID := ca.NewID()
	old, err := ca.NewRoot(clusterID, t0)
	if err != nil {
		t.Fatal(err)
	}
	next, err := ca.NewRotationRoot(clusterID, t0)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := ca.NewRotation(old, next, t0)
	if err != nil {
		t.Fatal(err)
	}
	init := initCmd()
	init.Cluster.RootCertPEM, init.Cluster.RootKeyPEM = old.CertPEM(), old.KeyPEM()
	start := &CARotateStart{ID: "r1", OldDigest: old.Digest(), NewDigest: next.Digest(), NewCertPEM: next.CertPEM(), NewKeyPEM: next.KeyPEM(), CrossPEM: rot.CrossPEM(), StartedAt: t0}
	finish := &CARotateFinish{ID: "r1", WorkerToken: "w2", ManagerToken: "m2", FinishedAt: t0.Add(time.Minute)}

	other, _ := ca.NewRotationRoot(clusterID, t0)
	otherRot, _ := ca.NewRotation(old, other, t0)
	badCross := *start
	badCross.CrossPEM = otherRot.CrossPEM() // another root's cross certificate
	badDigest := *start
	badDigest.NewDigest = other.Digest()

	f := New(nil)
	errs := applyAll(t, f, init,
		&NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker}},
		&CARotateNode{ID: "r1", NodeID: "n1"}, // before the start
		&badCross,
		&badDigest,
		start,
		start, // twice
		&CARotateNode{ID: "r1", NodeID: "n1"},
		finish, // w1 has not converted
		&CARotateNode{ID: "r0", NodeID: "w1"},
		&CARotateNode{ID: "r1", NodeID: "ghost"},
	)
	want := []error{nil, nil, ErrNoRotation, ErrBadSetting, ErrBadSetting, nil, ErrRotationInProgress, nil, ErrBadSetting, ErrNoRotation, ErrNodeNotFound}
	for i := range want {
		if !errors.Is(errs[i], want[i]) {
			t.Errorf("command %d: error %v; want %v", i, errs[i], want[i])
		}
	}
	f.Read(func(s *State, _ uint64) {
		if got := s.RotationWaiting(); len(got) != 1 || got[0] != "w1" {
			t.Errorf("waiting for %v; want [w1]", got)
		}
		if s.Cluster.RootDigest() != old.Digest() {
			t.Error("the root changed before the rotation finished")
		}
	})
	errs = applyAll(t, f, &CARotateNode{ID: "r1", NodeID: "w1"}, finish, finish)
	want = []error{nil, nil, ErrNoRotation}
	for i := range want {
		if !errors.Is(errs[i], want[i]) {
			t.Errorf("second batch, command %d: error %v; want %v", i, errs[i], want[i])
		}
	}
	f.Read(func(s *State, _ uint64) {
		r := s.CARotation
		if s.Cluster.RootDigest() != next.Digest() || !bytes.Equal(s.Cluster.RootKeyPEM, next.KeyPEM()) {
			t.Error("the new root did not replace the old one")
		}
		if s.Cluster.WorkerToken != "w2" || s.Cluster.ManagerToken != "m2" {
			t.Errorf("tokens %q %q; want w2 m2", s.Cluster.WorkerToken, s.Cluster.ManagerToken)
		}
		if r.InProgress() || r.NewKeyPEM != nil || len(s.RotationWaiting()) != 0 {
			t.Errorf("finished rotation still in progress (%v) or still holds the key", r.InProgress())
		}
	})
	// A finished rotation allows the next one, from the new root.
	start2 := *start
	start2.ID = "r2"
	if errs := applyAll(t, f, &start2); !errors.Is(errs[0], ErrBadSetting) {
		t.Errorf("start from the replaced root: error %v; want ErrBadSetting", errs[0])
	}
}
