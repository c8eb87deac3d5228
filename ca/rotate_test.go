package ca

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustRotation(t *testing.T, old *Root) *Rotation {
	t.Helper()
	next, err := NewRotationRoot(old.ClusterID(), t0)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := NewRotation(old, next, t0)
	if err != nil {
		t.Fatalf("NewRotation: %v", err)
	}
	return rot
}

func TestRotationTrust(t *testing.T) {
	cluster := NewID()
	old := mustRoot(t, cluster)
	rot := mustRotation(t, old)
	id := Identity{NewID(), RoleWorker, cluster}
	newLeaf := mustIssue(t, rot.New, id, time.Hour, t0)
	oldLeaf := mustIssue(t, old, id, time.Hour, t0)
	cross := []*x509.Certificate{rot.Cross()}

	tests := []struct {
		name          string
		leaf          *x509.Certificate
		intermediates []*x509.Certificate
		roots         *x509.CertPool
		ok            bool
	}{
		{"new leaf through cross, old trust", newLeaf, cross, pool(old), true},
		{"new leaf without cross, old trust", newLeaf, nil, pool(old), false},
		{"new leaf, both roots", newLeaf, cross, pool(old, rot.New), true},
		{"old leaf, both roots", oldLeaf, nil, pool(old, rot.New), true},
		{"new leaf, new trust", newLeaf, cross, pool(rot.New), true},
		{"old leaf refused by new trust", oldLeaf, cross, pool(rot.New), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.leaf, tc.intermediates, tc.roots, t0)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify error = %v; want ok=%v", err, tc.ok)
			}
		})
	}
	if !IssuedBy(newLeaf, rot.New) || IssuedBy(newLeaf, old) || !IssuedBy(oldLeaf, old) {
		t.Error("IssuedBy does not tell which root signed a leaf")
	}
	chain, err := ParseCertPEM(rot.ChainPEM(certPEM(newLeaf.Raw)))
	if err != nil || len(chain) != 4 || chain[1].Equal(rot.Cross()) == false || DigestOf(chain[2].Raw) != old.Digest() || DigestOf(chain[3].Raw) != rot.New.Digest() {
		t.Fatalf("ChainPEM: %d certs, %v; want leaf, cross, old, new", len(chain), err)
	}
	trust, _ := ParseCertPEM(rot.TrustPEM())
	if len(trust) != 2 || DigestOf(trust[0].Raw) != old.Digest() || DigestOf(trust[1].Raw) != rot.New.Digest() {
		t.Fatal("TrustPEM is not old then new")
	}
	again, err := LoadRotation(old, rot.New, rot.CrossPEM())
	if err != nil || !again.Cross().Equal(rot.Cross()) {
		t.Fatalf("LoadRotation round trip: %v", err)
	}
	other := mustRotation(t, old)
	if _, err := LoadRotation(old, rot.New, other.CrossPEM()); !errors.Is(err, ErrBadCert) {
		t.Errorf("LoadRotation(another rotation's cross) error = %v; want ErrBadCert", err)
	}
	if _, err := LoadRotation(mustRoot(t, cluster), rot.New, rot.CrossPEM()); !errors.Is(err, ErrBadCert) {
		t.Errorf("LoadRotation(wrong old root) error = %v; want ErrBadCert", err)
	}
}

func TestNewRotationRefuses(t *testing.T) {
	cluster := NewID()
	old := mustRoot(t, cluster)
	short, err := NewRotationRoot(cluster, t0.AddDate(-RootValidityYears, 0, 0).Add(300*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sameKey, err := ParseRoot(old.CertPEM(), old.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	future, err := NewRotationRoot(cluster, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		next *Root
	}{
		{"same root", sameKey},
		{"other cluster", mustRoot(t, NewID())},
		{"same subject", mustRoot(t, cluster)},
		{"expires within a year", short},
		{"not yet valid", future},
		{"nil", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRotation(old, tc.next, t0)
			if !errors.Is(err, ErrBadRotation) {
				t.Fatalf("NewRotation error = %v; want ErrBadRotation", err)
			}
			t.Log(err)
		})
	}
}

// TestCertificatesOpenSSL checks the certificates with a standard tool:
// openssl verifies a node certificate against its root, and, during a
// rotation, a new root's certificate through the cross-signed intermediate
// against the old root alone.
func TestCertificatesOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed: the standard-tool check is skipped")
	}
	now := time.Now()
	cluster := NewID()
	old, err := NewRoot(cluster, now)
	if err != nil {
		t.Fatal(err)
	}
	next, err := NewRotationRoot(cluster, now)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := NewRotation(old, next, now)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{NewID(), RoleManager, cluster}
	oldLeaf := mustIssue(t, old, id, time.Hour, now)
	newLeaf := mustIssue(t, next, id, time.Hour, now)

	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldRoot := write("old.pem", old.CertPEM())
	newRoot := write("new.pem", next.CertPEM())
	cross := write("cross.pem", rot.CrossPEM())
	oldLeafF := write("old-leaf.pem", certPEM(oldLeaf.Raw))
	newLeafF := write("new-leaf.pem", certPEM(newLeaf.Raw))

	run := func(args ...string) (string, error) {
		out, err := exec.Command(openssl, args...).CombinedOutput()
		return string(out), err
	}
	verify := []struct {
		name string
		args []string
		ok   bool
	}{
		{"node certificate against its root", []string{"verify", "-CAfile", oldRoot, oldLeafF}, true},
		{"new-root certificate through the cross-signed intermediate", []string{"verify", "-CAfile", oldRoot, "-untrusted", cross, newLeafF}, true},
		{"new-root certificate against the new root", []string{"verify", "-CAfile", newRoot, newLeafF}, true},
		{"new-root certificate without the intermediate", []string{"verify", "-CAfile", oldRoot, newLeafF}, false},
		{"old certificate against the new root", []string{"verify", "-CAfile", newRoot, oldLeafF}, false},
	}
	for _, tc := range verify {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.args...)
			if (err == nil) != tc.ok {
				t.Fatalf("openssl %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			if tc.ok && !strings.Contains(out, ": OK") {
				t.Fatalf("openssl verify said %q; want OK", out)
			}
		})
	}
	out, err := run("x509", "-in", newLeafF, "-noout", "-subject", "-nameopt", "RFC2253")
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	want := (pkix.Name{CommonName: id.NodeID, OrganizationalUnit: []string{OUManager}, Organization: []string{cluster}}).String()
	if got := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "subject=")); got != want {
		t.Errorf("openssl reads the subject %q; want %q", got, want)
	}
	if !bytes.Contains([]byte(out), []byte("OU="+OUManager)) {
		t.Errorf("subject %q lacks the role OU", out)
	}
}
