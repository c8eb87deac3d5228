package manager

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// newOperatorRoot makes a root CA as an operator would with their own
// tools: a self-signed ECDSA certificate with the given O.
func newOperatorRoot(t *testing.T, org string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{org}, CommonName: "operator root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(5 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// An operator's own root becomes the cluster's CA, and its subject's O the
// cluster ID; managers join under it.
func TestInitWithImportedRoot(t *testing.T) {
	m0 := newTestNode(t, "m0")
	clusterID := ca.NewID()
	certPEM, keyPEM := newOperatorRoot(t, clusterID)
	if _, err := m0.client.Init(ctxT(t), api.InitRequest{CACertPEM: string(certPEM)}); apiStatus(err) != 400 || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("init with a root and no key: %v", err)
	}
	init, err := m0.client.Init(ctxT(t), api.InitRequest{CACertPEM: string(certPEM), CAKeyPEM: string(keyPEM)})
	if err != nil {
		t.Fatal(err)
	}
	if init.ClusterID != clusterID {
		t.Fatalf("cluster ID %s; want the root's O %s", init.ClusterID, clusterID)
	}
	c := &testCluster{t: t, init: init, managers: []*testNode{m0}}
	m1 := c.join("m1", init.ManagerToken)
	if st := m1.status(); st.ClusterID != clusterID {
		t.Fatalf("joined manager: %+v", st)
	}
	// Joined, it catches up with the leader, then is ready.
	eventually(t, 15*time.Second, "the joined manager ready", func() bool { return m1.status().State == api.StateReady })
	root, err := ca.ParseRoot(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m1.client.CA(ctxT(t)); err != nil || got.Digest != root.Digest() {
		t.Fatalf("the cluster's root is not the imported one: %v", err)
	}
}

// A root whose O is not a cluster ID is refused with an error that says
// what O must be, and the node stays uninitialized.
func TestInitRefusesARootWithoutAClusterID(t *testing.T) {
	m0 := newTestNode(t, "m0")
	certPEM, keyPEM := newOperatorRoot(t, "Acme Corp")
	_, err := m0.client.Init(ctxT(t), api.InitRequest{CACertPEM: string(certPEM), CAKeyPEM: string(keyPEM)})
	if apiStatus(err) != 400 || !strings.Contains(err.Error(), `O is "Acme Corp"`) || !strings.Contains(err.Error(), "for example O=") {
		t.Fatalf("init with a root whose O is not a cluster ID: %v", err)
	}
	if st := m0.status(); st.State != api.StateUninitialized {
		t.Fatalf("a refused init left the node %s", st.State)
	}
}
