package manager

import (
	"encoding/json"
	"testing"
)

// TestNodeInfoRoleGolden: node.json holds the role as the build before the
// role type wrote it, and reads it back.
func TestNodeInfoRoleGolden(t *testing.T) {
	for _, tc := range []struct {
		info nodeInfo
		want string
	}{
		{nodeInfo{Format: 1, NodeID: "n1", ClusterID: "c1", Role: roleManager}, `{"format":1,"node_id":"n1","cluster_id":"c1","role":"manager","listen_addr":"","advertise_addr":""}`},
		{nodeInfo{Format: 1, NodeID: "n1", ClusterID: "c1", Role: roleWorker}, `{"format":1,"node_id":"n1","cluster_id":"c1","role":"worker","listen_addr":"","advertise_addr":""}`},
	} {
		b, err := json.Marshal(&tc.info)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("node.json = %s; want %s", b, tc.want)
		}
		var back nodeInfo
		if err := json.Unmarshal(b, &back); err != nil || back.Role != tc.info.Role {
			t.Errorf("node.json read back role %q (%v); want %q", back.Role, err, tc.info.Role)
		}
	}
}
