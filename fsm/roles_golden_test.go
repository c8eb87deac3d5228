package fsm

import (
	"bytes"
	"encoding/hex"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/testutil"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// roleCommands are commands that carry a role, in every position a role
// takes: a node record (init, add), a role change, a token rotation.
func roleCommands() []Command {
	at := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	return []Command{
		&ClusterInit{
			Cluster: Cluster{ID: "c1", CreatedAt: at, Settings: Settings{CertExpiry: 2160 * time.Hour, KeyRotation: 12 * time.Hour}, WorkerToken: "w", ManagerToken: "m"},
			First:   Node{ID: "n1", Role: ca.RoleManager, Addr: "127.0.0.1:4242", CreatedAt: at, CertExpiresAt: at.Add(time.Hour), CertSerial: "01", CertKeySHA256: "ab"},
		},
		&NodeAdd{Node: Node{ID: "w1", Role: ca.RoleWorker, Addr: "127.0.0.1:5000", CreatedAt: at}},
		&NodeAdd{Node: Node{ID: "n2", Role: ca.RoleManager, Addr: "127.0.0.1:5001", CreatedAt: at}},
		&NodeSetRole{ID: "w1", Role: ca.RoleManager},
		&NodeSetRole{ID: "n2", Role: ca.RoleWorker},
		&TokenRotate{Role: ca.RoleWorker, Token: "w2"},
		&TokenRotate{Role: ca.RoleManager, Token: "m2"},
	}
}

// TestRoleEncodingsGolden: the raft command encoding of every command that
// carries a role, and the snapshot of the state they make, are byte for
// byte what the build before the role type wrote (testdata, made with
// -update by that build). A role type that changed how a role is written
// would change the log and snapshots every manager shares.
func TestRoleEncodingsGolden(t *testing.T) {
	var out bytes.Buffer
	f := New(nil)
	for _, c := range roleCommands() {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		// The 4-byte header in hex, then the payload as it is.
		out.WriteString(c.Type().String() + " " + hex.EncodeToString(b[:headerLen]) + " " + string(b[headerLen:]) + "\n")
		if errs := applyAll(t, f, c); errs[0] != nil {
			t.Fatalf("apply %s: %v", c.Type(), errs[0])
		}
	}
	snap, _, err := f.SnapshotData()
	if err != nil {
		t.Fatal(err)
	}
	out.WriteString("snapshot " + string(snap) + "\n")

	testutil.Golden(t, filepath.Join("testdata", "roles.golden"), out.Bytes(), *updateGolden)
}
