package ca

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/testutil"
)

// TestRoleSubjectGolden: a certificate issued for each role carries the
// role in its subject's OU byte for byte as the build before the role type
// wrote it (testdata, made with -update by that build), and IdentityOf
// reads the same role back. Every node checks peers by these bytes.
func TestRoleSubjectGolden(t *testing.T) {
	const clusterID, nodeID = "aaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbba"
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	root, err := NewRoot(clusterID, now)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, role := range []Role{RoleManager, RoleWorker} {
		id := Identity{NodeID: nodeID, Role: role, ClusterID: clusterID}
		cert := mustIssue(t, root, id, time.Hour, now)
		out.WriteString(string(role) + " " + hex.EncodeToString(cert.RawSubject) + "\n")
		got, err := IdentityOf(cert)
		if err != nil {
			t.Fatal(err)
		}
		if got != id {
			t.Errorf("IdentityOf = %+v; want %+v", got, id)
		}
	}
	testutil.Golden(t, filepath.Join("testdata", "roles.golden"), out.Bytes(), *update)
}
