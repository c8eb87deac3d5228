package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustRoot(t testing.TB, clusterID string) *Root {
	t.Helper()
	r, err := NewRoot(clusterID, t0)
	if err != nil {
		t.Fatalf("NewRoot: %v", err)
	}
	return r
}

func mustIssue(t testing.TB, r *Root, id Identity, validity time.Duration, now time.Time) *x509.Certificate {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Issue(csr, id, validity, now)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	certs, err := ParseCertPEM(p)
	if err != nil || len(certs) != 1 {
		t.Fatalf("ParseCertPEM: %d certs, %v", len(certs), err)
	}
	return certs[0]
}

// signRaw makes a certificate from tmpl signed by r, bypassing Issue's rules.
func signRaw(t testing.TB, r *Root, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, _ := NewKey()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(7)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, &key.PublicKey, r.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pool(rs ...*Root) *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range rs {
		p.AddCert(r.Certificate())
	}
	return p
}

func TestIDs(t *testing.T) {
	id := NewID()
	if len(id) != IDLen || !ValidID(id) {
		t.Fatalf("NewID() = %q: len %d, valid %v", id, len(id), ValidID(id))
	}
	if NewID() == id {
		t.Fatal("two NewID calls returned the same ID")
	}
	tests := []struct {
		in   string
		want bool
	}{
		{id, true},
		{"", false},
		{strings.ToUpper(id), false},
		{id[:25], false},
		{id + "a", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaaa1", false}, // 1 is not in the alphabet
		{"aaaaaaaaaaaaaaaaaaaaaaaaab", false}, // non-zero trailing bits
		{"aaaaaaaaaaaaaaaaaaaaaaaaaq", true},
		{"aaaaaaaaaaaa\naaaaaaaaaaaaa", false},
	}
	for _, tc := range tests {
		if got := ValidID(tc.in); got != tc.want {
			t.Errorf("ValidID(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestNewRoot(t *testing.T) {
	cluster := NewID()
	r := mustRoot(t, cluster)
	c := r.Certificate()
	if !c.IsCA || c.Subject.CommonName != RootCommonName || r.ClusterID() != cluster {
		t.Errorf("root subject %v, IsCA %v", c.Subject, c.IsCA)
	}
	if want := t0.Add(-time.Hour); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v; want %v", c.NotBefore, want)
	}
	if want := t0.Add(-time.Hour).AddDate(20, 0, 0); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v; want %v", c.NotAfter, want)
	}
	if got := r.Digest(); len(got) != 64 || !ValidDigest(got) || got != DigestOf(c.Raw) {
		t.Errorf("Digest() = %q", got)
	}
	again, err := ParseRoot(r.CertPEM(), r.KeyPEM())
	if err != nil {
		t.Fatalf("ParseRoot(round trip): %v", err)
	}
	if again.Digest() != r.Digest() || string(again.KeyPEM()) != string(r.KeyPEM()) {
		t.Error("ParseRoot round trip changed the root")
	}
	if _, err := NewRoot("not-an-id", t0); !errors.Is(err, ErrBadIdentity) {
		t.Errorf("NewRoot(bad id) error = %v; want ErrBadIdentity", err)
	}
}

func TestParseRootRefuses(t *testing.T) {
	r := mustRoot(t, NewID())
	other := mustRoot(t, NewID())
	leaf := mustIssue(t, r, Identity{NewID(), RoleManager, r.ClusterID()}, time.Hour, t0)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	p384PEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384der})
	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		wantErr error
	}{
		{"mismatched key", r.CertPEM(), other.KeyPEM(), ErrKeyMismatch},
		{"leaf as root", certPEM(leaf.Raw), r.KeyPEM(), ErrNotCA},
		{"two certificates", append(r.CertPEM(), other.CertPEM()...), r.KeyPEM(), ErrBadCert},
		{"no certificate", nil, r.KeyPEM(), ErrBadCert},
		{"P-384 key", r.CertPEM(), p384PEM, ErrBadKey},
		{"key is a certificate", r.CertPEM(), r.CertPEM(), ErrBadKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRoot(tc.cert, tc.key)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseRoot error = %v; want %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error echoes key material: %v", err)
			}
		})
	}
}

func TestIssueVerify(t *testing.T) {
	cluster := NewID()
	r := mustRoot(t, cluster)
	other := mustRoot(t, NewID())
	sameCluster := mustRoot(t, cluster) // same cluster ID, different key
	mgr := Identity{NewID(), RoleManager, cluster}
	wkr := Identity{NewID(), RoleWorker, cluster}
	tests := []struct {
		name    string
		leaf    *x509.Certificate
		roots   *x509.CertPool
		now     time.Time
		want    Identity
		wantErr error
	}{
		{"manager", mustIssue(t, r, mgr, time.Hour, t0), pool(r), t0, mgr, nil},
		{"worker", mustIssue(t, r, wkr, time.Hour, t0), pool(r), t0, wkr, nil},
		{"one of several roots", mustIssue(t, r, mgr, time.Hour, t0), pool(other, r), t0, mgr, nil},
		{"starts a minute early", mustIssue(t, r, mgr, time.Hour, t0), pool(r), t0.Add(-59 * time.Second), mgr, nil},
		{"wrong root", mustIssue(t, r, mgr, time.Hour, t0), pool(other), t0, Identity{}, ErrUntrusted},
		{"same cluster other root", mustIssue(t, r, mgr, time.Hour, t0), pool(sameCluster), t0, Identity{}, ErrUntrusted},
		{"expired", mustIssue(t, r, mgr, time.Hour, t0), pool(r), t0.Add(time.Hour + time.Second), Identity{}, ErrUntrusted},
		{"not yet valid", mustIssue(t, r, mgr, time.Hour, t0), pool(r), t0.Add(-2 * time.Minute), Identity{}, ErrUntrusted},
		{"no roots", mustIssue(t, r, mgr, time.Hour, t0), nil, t0, Identity{}, ErrUntrusted},
		{"root as leaf", r.Certificate(), pool(r), t0, Identity{}, ErrUntrusted},
		{"wrong OU", signRaw(t, r, &x509.Certificate{
			Subject:   pkix.Name{CommonName: NewID(), OrganizationalUnit: []string{"holdfast-admin"}, Organization: []string{cluster}},
			NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}), pool(r), t0, Identity{}, ErrBadIdentity},
		{"server auth only", signRaw(t, r, &x509.Certificate{
			Subject:   pkix.Name{CommonName: NewID(), OrganizationalUnit: []string{OUManager}, Organization: []string{cluster}},
			NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}), pool(r), t0, Identity{}, ErrUntrusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.leaf, nil, tc.roots, tc.now)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify error = %v; want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Verify = %+v; want %+v", got, tc.want)
			}
		})
	}
}

func TestIssueCertificateFields(t *testing.T) {
	cluster := NewID()
	r := mustRoot(t, cluster)
	id := Identity{NewID(), RoleWorker, cluster}
	// The CSR asks to be a manager of another cluster; the subject must come from id.
	key, _ := NewKey()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "evil", OrganizationalUnit: []string{OUManager}, Organization: []string{NewID()}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Issue(csr, id, DefaultCertExpiry, t0)
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := ParseCertPEM(p)
	c := certs[0]
	got, err := IdentityOf(c)
	if err != nil || got != id {
		t.Fatalf("IdentityOf = %+v, %v; want %+v", got, err, id)
	}
	if !key.PublicKey.Equal(c.PublicKey) {
		t.Error("certificate is not for the CSR's key")
	}
	if !c.NotBefore.Equal(t0.Add(-time.Minute)) || !c.NotAfter.Equal(t0.Add(DefaultCertExpiry)) {
		t.Errorf("validity %v..%v", c.NotBefore, c.NotAfter)
	}
	if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature || len(c.ExtKeyUsage) != 2 {
		t.Errorf("IsCA %v KeyUsage %v ExtKeyUsage %v", c.IsCA, c.KeyUsage, c.ExtKeyUsage)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v", c.SerialNumber)
	}
	// Capped at the root's expiry.
	capped := mustIssue(t, r, id, 100*365*24*time.Hour, t0)
	if !capped.NotAfter.Equal(r.Certificate().NotAfter) {
		t.Errorf("NotAfter = %v; want root's %v", capped.NotAfter, r.Certificate().NotAfter)
	}
}

func TestIssueRefuses(t *testing.T) {
	cluster := NewID()
	r := mustRoot(t, cluster)
	key, _ := NewKey()
	good, _ := NewCSR(key)
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-1] ^= 0xff
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaKey)
	ok := Identity{NewID(), RoleManager, cluster}
	tests := []struct {
		name     string
		csr      []byte
		id       Identity
		validity time.Duration
		wantErr  error
	}{
		{"bad csr signature", badSig, ok, time.Hour, ErrBadCSR},
		{"csr garbage", []byte("nope"), ok, time.Hour, ErrBadCSR},
		{"rsa csr", rsaCSR, ok, time.Hour, ErrBadCSR},
		{"other cluster", good, Identity{ok.NodeID, RoleManager, NewID()}, time.Hour, ErrBadIdentity},
		{"bad role", good, Identity{ok.NodeID, "admin", cluster}, time.Hour, ErrBadIdentity},
		{"bad node id", good, Identity{"node-1", RoleManager, cluster}, time.Hour, ErrBadIdentity},
		{"zero validity", good, ok, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Issue(tc.csr, tc.id, tc.validity, t0)
			if err == nil {
				t.Fatal("Issue succeeded; want error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Issue error = %v; want %v", err, tc.wantErr)
			}
		})
	}
}

func TestIdentityOfStrict(t *testing.T) {
	cluster := NewID()
	r := mustRoot(t, cluster)
	node := NewID()
	extra := func(oid asn1.ObjectIdentifier, v string) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{{Type: oid, Value: v}, {Type: oid, Value: NewID()}}
	}
	tests := []struct {
		name    string
		subject pkix.Name
		ok      bool
	}{
		{"good", pkix.Name{CommonName: node, OrganizationalUnit: []string{OUManager}, Organization: []string{cluster}}, true},
		{"two CN", pkix.Name{OrganizationalUnit: []string{OUManager}, Organization: []string{cluster}, ExtraNames: extra(oidCN, NewID())}, false},
		{"two OU", pkix.Name{CommonName: node, OrganizationalUnit: []string{OUWorker, OUManager}, Organization: []string{cluster}}, false},
		{"two O", pkix.Name{CommonName: node, OrganizationalUnit: []string{OUManager}, Organization: []string{cluster, NewID()}}, false},
		{"no O", pkix.Name{CommonName: node, OrganizationalUnit: []string{OUManager}}, false},
		{"no CN", pkix.Name{OrganizationalUnit: []string{OUManager}, Organization: []string{cluster}}, false},
		{"bad CN", pkix.Name{CommonName: "x", OrganizationalUnit: []string{OUManager}, Organization: []string{cluster}}, false},
		{"bad O", pkix.Name{CommonName: node, OrganizationalUnit: []string{OUManager}, Organization: []string{"cluster"}}, false},
		{"unknown OU", pkix.Name{CommonName: node, OrganizationalUnit: []string{"manager"}, Organization: []string{cluster}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := signRaw(t, r, &x509.Certificate{Subject: tc.subject, NotBefore: t0, NotAfter: t0.Add(time.Hour)})
			_, err := IdentityOf(c)
			if tc.ok && err != nil {
				t.Fatalf("IdentityOf error = %v; want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadIdentity) {
				t.Fatalf("IdentityOf error = %v; want ErrBadIdentity", err)
			}
		})
	}
	if _, err := IdentityOf(nil); !errors.Is(err, ErrBadIdentity) {
		t.Errorf("IdentityOf(nil) error = %v", err)
	}
}
