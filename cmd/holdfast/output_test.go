package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	hfversion "github.com/holdfast/holdfast/internal/version"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lines joins its arguments into text with a newline after each.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func TestPrintStatus(t *testing.T) {
	tests := []struct {
		name string
		st   api.Status
		want string
	}{
		{
			name: "uninitialized",
			st:   api.Status{State: api.StateUninitialized},
			want: lines(
				"This node is not part of a cluster (state: uninitialized).",
				"Create a cluster with 'holdfast init', or join one with 'holdfast join --token TOKEN HOST:PORT'.",
			),
		},
		{
			name: "leader",
			st: api.Status{
				NodeID: "n1", ClusterID: "c1", Role: "manager", State: api.StateReady, Addr: "10.0.0.1:4242",
				IsLeader: true, Leader: api.Leader{NodeID: "n1", Addr: "10.0.0.1:4242"},
				Raft: api.RaftStatus{Term: 3, LastIndex: 12, CommitIndex: 11, AppliedIndex: 10},
				Managers: []api.ManagerStatus{
					{NodeID: "n1", Addr: "10.0.0.1:4242", Leader: true, Voter: true, Reachable: true},
					{NodeID: "n22", Addr: "10.0.0.22:4242", Voter: true},
				},
			},
			want: lines(
				"Node ID:     n1",
				"Cluster ID:  c1",
				"Role:        manager",
				"State:       ready",
				"Address:     10.0.0.1:4242",
				"Autolock:    off",
				"Leader:      n1 (10.0.0.1:4242), this node",
				"Raft:        term 3, last index 12, commit index 11, applied index 10",
				"",
				"Managers:",
				"NODE ID  ADDR            LEADER  VOTER  REACHABLE",
				"n1       10.0.0.1:4242   yes     yes    yes",
				"n22      10.0.0.22:4242  no      yes    no",
			),
		},
		{
			name: "worker without leader",
			st:   api.Status{NodeID: "w1", ClusterID: "c1", Role: "worker", State: api.StateReady, Autolock: true},
			want: lines(
				"Node ID:     w1",
				"Cluster ID:  c1",
				"Role:        worker",
				"State:       ready",
				"Address:     -",
				"Autolock:    on",
				"Leader:      none: no leader is elected (the managers may have lost quorum)",
			),
		},
		{
			name: "locked",
			st:   api.Status{NodeID: "n1", ClusterID: "c1", Role: "manager", State: api.StateLocked, Autolock: true},
			want: lines(
				"Node ID:     n1",
				"Cluster ID:  c1",
				"Role:        manager",
				"State:       locked",
				"Address:     -",
				"Autolock:    on",
				"Leader:      -",
				"Raft:        term 0, last index 0, commit index 0, applied index 0",
				"",
				"This node is locked; run 'holdfast unlock' to unlock it.",
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := printStatus(&b, &tt.st); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

var testExpiry = time.Date(2027, 2, 1, 12, 0, 0, 0, time.UTC)

func TestPrintNodes(t *testing.T) {
	nodes := []api.Node{
		{ID: "n1", Role: "manager", Addr: "10.0.0.1:4242", Status: api.NodeReady, Leader: true, Voter: true, CertExpiresAt: testExpiry, Level: 4},
		{ID: "w2", Role: "worker", Addr: "10.0.0.2:4242", Status: api.NodeDown, CertExpiresAt: testExpiry.In(time.FixedZone("X", 3600))},
	}
	var b strings.Builder
	if err := printNodes(&b, nodes); err != nil {
		t.Fatal(err)
	}
	want := lines(
		"ID  ROLE     ADDR           STATUS  LEADER  VOTER  CERT EXPIRES          LEVEL",
		"n1  manager  10.0.0.1:4242  ready   yes     yes    2027-02-01T12:00:00Z  4",
		"w2  worker   10.0.0.2:4242  down    no      no     2027-02-01T12:00:00Z  -",
	)
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestNodeJSONFields(t *testing.T) {
	var b strings.Builder
	if err := writeJSON(&b, []api.Node{{ID: "n1", Role: "manager", CertExpiresAt: testExpiry}}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "role", "addr", "status", "leader", "voter", "cert_expires_at"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("node JSON has no %q: %s", k, b.String())
		}
	}
	if got[0]["cert_expires_at"] != "2027-02-01T12:00:00Z" {
		t.Errorf("cert_expires_at = %v; want RFC 3339", got[0]["cert_expires_at"])
	}
}

func TestPrintInit(t *testing.T) {
	r := &api.InitResponse{ClusterID: "c1", NodeID: "n1", Addr: "10.0.0.1:4242", WorkerToken: "WT", ManagerToken: "MT"}
	var b strings.Builder
	if err := printInit(&b, r); err != nil {
		t.Fatal(err)
	}
	want := lines(
		"Cluster initialized: c1",
		"This node (n1) is now its first manager.",
		"",
		"To add a worker, run on it:",
		"    holdfast join --token WT 10.0.0.1:4242",
		"To add a manager, run on it:",
		"    holdfast join --token MT 10.0.0.1:4242",
	)
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	r.UnlockKey = "HFKEY-abc"
	b.Reset()
	if err := printInit(&b, r); err != nil {
		t.Fatal(err)
	}
	withKey := want + lines(
		"",
		"Unlock key:",
		"HFKEY-abc",
		"",
		"Keep it safe: a restarted manager stays locked until it is unlocked with this key. It is never written to disk.",
	)
	if b.String() != withKey {
		t.Errorf("with autolock, got:\n%s\nwant the join commands, then the key on a line of its own", b.String())
	}
}

func TestPrintJoinToken(t *testing.T) {
	var b strings.Builder
	if err := printJoinToken(&b, &api.JoinToken{Role: "manager", Token: "HFTKN-1-x"}, "10.0.0.1:4242", true); err != nil {
		t.Fatal(err)
	}
	want := lines(
		"Rotated the manager join token; the old one no longer works.",
		"To add a manager to this cluster, run on it:",
		"    holdfast join --token HFTKN-1-x 10.0.0.1:4242",
	)
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "version", "--format", "json")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version --format json: %v\n%s", err, r.stdout)
	}
	if gv, _ := v["go_version"].(string); v["version"] != hfversion.String() || !strings.HasPrefix(gv, "go") {
		t.Errorf("got %v; want version %q and a Go version", v, hfversion.String())
	}
	if _, ok := v["commit"]; !ok {
		t.Errorf("no commit field in %v", v)
	}
	// The build's level and what it can apply (docs/OPERATIONS.md §7).
	cmds, _ := v["commands"].([]any)
	if v["level"] != float64(fsm.CurrentLevel) || !slices.Contains(cmds, any("batch/1")) || !slices.Contains(cmds, any("secret.create/2")) {
		t.Errorf("version: level %v, commands %v; want level %d with batch/1 and secret.create/2", v["level"], cmds, fsm.CurrentLevel)
	}
	r = runCLI(t, "version")
	if !strings.HasPrefix(r.stdout, "Version:     "+hfversion.String()+"\n") {
		t.Errorf("version: got %q", r.stdout)
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/holdfast-dev-1/node-1.sock", "/tmp/holdfast-dev-1/node-1.sock"},
		{"/tmp/with space/n.sock", "'/tmp/with space/n.sock'"},
		{"/tmp/it's", `'/tmp/it'\''s'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestProgressPlainLines(t *testing.T) {
	var b strings.Builder
	p := newProgress(&b)
	p.step("starting node %d of %d", 1, 3)
	p.step("waiting")
	p.done()
	if got, want := b.String(), "starting node 1 of 3\nwaiting\n"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}
