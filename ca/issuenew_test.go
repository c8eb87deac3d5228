package ca

import (
	"errors"
	"testing"
	"time"
)

// TestIssueNewKey: the key returned is the one certified, the certificate
// says the identity asked for, and the record describes it; an identity
// of another cluster is refused like Issue refuses it.
func TestIssueNewKey(t *testing.T) {
	now := time.Now()
	cluster := NewID()
	root, err := NewRoot(cluster, now)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{NodeID: NewID(), Role: RoleManager, ClusterID: cluster}
	certPEM, keyPEM, rec, err := root.IssueNewKey(id, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	got, err := IdentityOf(certs[0])
	if err != nil || got != id {
		t.Errorf("identity = %+v, %v; want %+v", got, err, id)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		t.Error("the key returned is not the certificate's")
	}
	want, err := RecordOfPEM(certPEM)
	if err != nil || rec != want || rec.NotAfter.IsZero() {
		t.Errorf("record = %+v; want %+v (%v)", rec, want, err)
	}
	if _, _, _, err := root.IssueNewKey(Identity{NodeID: NewID(), Role: RoleManager, ClusterID: NewID()}, time.Hour, now); !errors.Is(err, ErrBadIdentity) {
		t.Errorf("another cluster's identity: got %v; want ErrBadIdentity", err)
	}
}
