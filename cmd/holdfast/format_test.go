package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/api"
)

// listingDaemon answers the listings and inspections with fixed data.
func listingDaemon(t *testing.T) *fakeDaemon {
	nodes := []api.Node{
		{ID: "m1aaaa", Role: "manager", Addr: "10.0.0.1:4242", Status: "ready", Leader: true, Voter: true},
		{ID: "m2bbbb", Role: "manager", Addr: "10.0.0.2:4242", Status: "down", Voter: true},
		{ID: "w1cccc", Role: "worker", Addr: "10.0.0.3:4242", Status: "ready"},
	}
	secrets := []api.SecretMeta{
		{ID: "s1", Name: "db-password", Labels: map[string]string{"env": "prod", "team": "db"}, Grants: []string{"m1aaaa", "m2bbbb", "w1cccc"}, Size: 6},
		{ID: "s2", Name: "db-user", Labels: map[string]string{"env": "dev"}, Size: 4},
		{ID: "s3", Name: "api-token", Labels: map[string]string{}, Grants: []string{"w1cccc"}, Size: 9},
	}
	return startFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /v1/nodes":
			answer(w, http.StatusOK, nodes)
		case "GET /v1/secrets":
			answer(w, http.StatusOK, secrets)
		case "GET /v1/secrets/db-password":
			answer(w, http.StatusOK, secrets[0])
		case "GET /v1/ca":
			answer(w, http.StatusOK, api.CAInfo{RootPEM: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n", Digest: "sha256:abc"})
		case "GET /v1/unlock-key":
			answer(w, http.StatusOK, api.UnlockKeyResponse{UnlockKey: "HFKEY-1-k"})
		default:
			answer(w, http.StatusNotFound, map[string]string{"error": "no route " + r.URL.Path})
		}
	})
}

// TestFormatTemplate: --format takes a Go template on the JSON field
// names, run once per item of a listing and once for an inspection.
func TestFormatTemplate(t *testing.T) {
	d := listingDaemon(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"node", "ls", "--format", "{{.id}} {{.role}}"}, "m1aaaa manager\nm2bbbb manager\nw1cccc worker\n"},
		{[]string{"secret", "ls", "--format", "{{.name}}={{len .grants}}"}, "db-password=3\ndb-user=0\napi-token=1\n"},
		{[]string{"secret", "inspect", "db-password", "--format", "{{.name}} {{join .grants \",\"}} {{json .labels}}"}, "db-password m1aaaa,m2bbbb,w1cccc {\"env\":\"prod\",\"team\":\"db\"}\n"},
		{[]string{"ca", "--format", "{{.digest}}"}, "sha256:abc\n"},
		{[]string{"unlock-key", "--format", "{{.unlock_key}}"}, "HFKEY-1-k\n"},
	}
	for _, tt := range tests {
		r := runCLI(t, append(tt.args, "--socket", d.socket)...)
		if r.code != exitOK || r.stdout != tt.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
	r := runCLI(t, "node", "ls", "--format", "{{.nmae}}", "--socket", d.socket)
	if r.code != exitUsage {
		t.Errorf("a template naming no field: exit %d; want %d", r.code, exitUsage)
	}
	checkErrorLine(t, r, "the --format template failed")
	r = runCLI(t, "node", "ls", "--format", "{{.id", "--socket", d.socket)
	if r.code != exitUsage {
		t.Errorf("a broken template: exit %d; want %d", r.code, exitUsage)
	}
	checkErrorLine(t, r, `invalid value "{{.id" for --format: not a valid template`)
}

// TestCAAndUnlockKeyJSON: ca and unlock-key take --format json, with the
// field names of the API.
func TestCAAndUnlockKeyJSON(t *testing.T) {
	d := listingDaemon(t)
	r := runCLI(t, "ca", "--format", "json", "--socket", d.socket)
	var info map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &info); r.code != exitOK || err != nil || info["digest"] != "sha256:abc" || !strings.Contains(info["root_pem"].(string), "BEGIN CERTIFICATE") {
		t.Errorf("ca --format json: exit %d, %v, stdout %q", r.code, err, r.stdout)
	}
	r = runCLI(t, "unlock-key", "--format", "json", "--socket", d.socket)
	var key map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &key); r.code != exitOK || err != nil || key["unlock_key"] != "HFKEY-1-k" {
		t.Errorf("unlock-key --format json: exit %d, %v, stdout %q", r.code, err, r.stdout)
	}
	if r := runCLI(t, "ca", "--rotate", "--format", "json", "--socket", d.socket); r.code != exitUsage {
		t.Errorf("ca --rotate --format json: exit %d; want %d", r.code, exitUsage)
	}
}

// TestFilters: --filter on node ls and secret ls, each key, repeated
// keys (any value) and different keys (all), and an unknown key.
func TestFilters(t *testing.T) {
	d := listingDaemon(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"node", "ls", "--filter", "role=manager"}, "m1aaaa\nm2bbbb\n"},
		{[]string{"node", "ls", "--filter", "status=ready"}, "m1aaaa\nw1cccc\n"},
		{[]string{"node", "ls", "--filter", "role=manager", "--filter", "status=ready"}, "m1aaaa\n"},
		{[]string{"node", "ls", "--filter", "id=w1"}, "w1cccc\n"},
		{[]string{"node", "ls", "--filter", "name=m2"}, "m2bbbb\n"},
		{[]string{"node", "ls", "--filter", "id=w1", "--filter", "id=m2"}, "m2bbbb\nw1cccc\n"},
		{[]string{"secret", "ls", "--filter", "name=db-"}, "s1\ns2\n"},
		{[]string{"secret", "ls", "--filter", "label=env=prod"}, "s1\n"},
		{[]string{"secret", "ls", "--filter", "label=env"}, "s1\ns2\n"},
		{[]string{"secret", "ls", "--filter", "label=team", "--filter", "name=api"}, ""},
		{[]string{"secret", "ls", "--filter", "id=s3"}, "s3\n"},
	}
	for _, tt := range tests {
		r := runCLI(t, append(tt.args, "-q", "--socket", d.socket)...)
		if r.code != exitOK || r.stdout != tt.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
	// The filter applies to every output form.
	r := runCLI(t, "node", "ls", "--filter", "role=worker", "--format", "json", "--socket", d.socket)
	var nodes []api.Node
	if err := json.Unmarshal([]byte(r.stdout), &nodes); err != nil || len(nodes) != 1 || nodes[0].ID != "w1cccc" {
		t.Errorf("node ls --filter role=worker --format json: %v, %q", err, r.stdout)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "ls", "--filter", "colour=red"}, `unknown filter key "colour": want one of role, status, id, name`},
		{[]string{"secret", "ls", "--filter", "role=manager"}, `unknown filter key "role": want one of name, id, label`},
		{[]string{"secret", "ls", "--filter", "label"}, `bad filter "label": want KEY=VALUE`},
	} {
		r := runCLI(t, append(tt.args, "--socket", d.socket)...)
		if r.code != exitUsage {
			t.Errorf("%q: exit %d; want %d", tt.args, r.code, exitUsage)
		}
		checkErrorLine(t, r, tt.want)
	}
	if r := runCLI(t, "keys", "ls", "--filter", "a=b"); r.code != exitUsage {
		t.Errorf("keys ls --filter: exit %d; want a usage error, keys ls has no filters", r.code)
	}
}
