package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

func TestCACommand(t *testing.T) {
	socket, _ := startManager(t)
	if r := runCLI(t, "init", "-q", "--socket", socket); r.code != exitOK {
		t.Fatalf("init: exit %d, %s", r.code, r.stderr)
	}
	show := func() string {
		t.Helper()
		r := runCLI(t, "ca", "--socket", socket)
		if r.code != exitOK {
			t.Fatalf("ca: exit %d, %s", r.code, r.stderr)
		}
		certs, err := ca.ParseCertPEM([]byte(r.stdout))
		if err != nil || len(certs) != 1 || !certs[0].IsCA {
			t.Fatalf("ca printed %q (%v); want one CA certificate in PEM", r.stdout, err)
		}
		return r.stdout
	}
	before := show()

	r := runCLI(t, "ca", "--rotate", "--socket", socket)
	if r.code != exitOK {
		t.Fatalf("ca --rotate: exit %d, %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "done: all 1 nodes hold certificates from the new root") {
		t.Errorf("ca --rotate printed %q", r.stdout)
	}
	// Not a terminal: plain progress lines, no bar or escape codes.
	if strings.Contains(r.stderr, "\033[") || strings.Contains(r.stderr, "[#") {
		t.Errorf("progress on a non-terminal has terminal codes: %q", r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if line != "" && !strings.Contains(line, "nodes on the new root") {
			t.Errorf("progress line %q", line)
		}
	}
	after := show()
	if after == before {
		t.Fatal("the root did not change")
	}

	// --detach -q prints the rotation ID at once; re-running follows it.
	r = runCLI(t, "ca", "--rotate", "--detach", "-q", "--socket", socket)
	if id := strings.TrimSpace(r.stdout); r.code != exitOK || !ca.ValidID(id) {
		t.Fatalf("ca --rotate --detach -q: exit %d, stdout %q, %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "ca", "--rotate", "-q", "--socket", socket)
	if r.code != exitOK || r.stderr != "" {
		t.Fatalf("ca --rotate -q: exit %d, stderr %q", r.code, r.stderr)
	}
	if certs, err := ca.ParseCertPEM([]byte(r.stdout)); err != nil || len(certs) != 1 || r.stdout == after {
		t.Fatalf("ca --rotate -q printed %q; want the new root", r.stdout)
	}

	// An imported root that cannot be rotated to is a clear error.
	dir := t.TempDir()
	other, _ := ca.NewRotationRoot(ca.NewID(), time.Now())
	certF, keyF := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certF, other.CertPEM(), 0o600)
	os.WriteFile(keyF, other.KeyPEM(), 0o600)
	r = runCLI(t, "ca", "--rotate", "--ca-cert", certF, "--ca-key", keyF, "--socket", socket)
	if r.code != exitError {
		t.Fatalf("rotate to another cluster's root: exit %d; want %d", r.code, exitError)
	}
	checkErrorLine(t, r, "must be the cluster ID")
}

func TestRotationLine(t *testing.T) {
	r := &api.CARotation{Nodes: 4, Converted: 2, Waiting: []api.CAWaitingFor{
		{ID: "n1", Addr: "10.0.0.1:4242", Status: api.NodeDown},
		{ID: "n2", Addr: "10.0.0.2:4242", Status: api.NodeReady},
	}}
	want := "2/4 nodes on the new root; waiting for: n1 (10.0.0.1:4242) — unreachable, n2 (10.0.0.2:4242) — renewing"
	if got := rotationLine(r, false); got != want {
		t.Errorf("plain line = %q; want %q", got, want)
	}
	if got := rotationLine(r, true); got != "[##########..........] "+want {
		t.Errorf("terminal line = %q", got)
	}
}
