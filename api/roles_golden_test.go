package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/strictjson"
	"github.com/holdfast/holdfast/internal/testutil"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestRoleJSONGolden: every API type that carries a role encodes it, for
// each role, byte for byte as the build before the role type did
// (testdata, made with -update by that build), and decodes back to the
// same value, on the server's strict decoder too.
func TestRoleJSONGolden(t *testing.T) {
	var vals []any
	for _, r := range []ca.Role{ca.RoleManager, ca.RoleWorker} {
		vals = append(vals,
			&Status{NodeID: "n1", ClusterID: "c1", Role: r, State: "ready"},
			&Node{ID: "n1", Role: r, Addr: "a"},
			&JoinResponse{ClusterID: "c1", NodeID: "n1", Role: r},
			&JoinToken{Role: r, Token: "t"},
			&JoinGrant{ClusterID: "c1", NodeID: "n1", Role: r},
			&RenewResponse{Role: r},
			&Health{Status: HealthReady, NodeID: "n1", Role: r},
			&CAWaitingFor{ID: "n1", Role: r, Addr: "a", Status: "ready"},
		)
	}
	vals = append(vals, &Health{Status: HealthReady}) // no role: omitted
	var out bytes.Buffer
	for _, v := range vals {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(reflect.TypeOf(v).Elem().Name() + " " + string(b) + "\n")
		back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := strictjson.Unmarshal(b, back); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !reflect.DeepEqual(back, v) {
			t.Errorf("%s decodes to %+v; want %+v", b, back, v)
		}
	}
	testutil.Golden(t, filepath.Join("testdata", "roles.golden"), out.Bytes(), *updateGolden)
}
