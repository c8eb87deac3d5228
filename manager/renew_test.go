package manager

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
)

// fakeClock tells the test every wait the renewal loop asks for, and
// lets the test end it.
type fakeClock struct {
	waits chan fakeWait
}

type fakeWait struct {
	asked time.Time
	d     time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{waits: make(chan fakeWait, 16)} }

func (c *fakeClock) Now() time.Time { return time.Now() }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{asked: time.Now(), d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// next returns the next wait the loop asked for.
func (c *fakeClock) next(t *testing.T) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(20 * time.Second):
		t.Fatal("the renewal loop asked for no wait")
		return fakeWait{}
	}
}

func TestCertificateRenewalWindow(t *testing.T) {
	clocks := map[string]*fakeClock{}
	c := &testCluster{t: t}
	for _, name := range []string{"m0", "w0"} {
		tn := newTestNode(t, name)
		clocks[name] = newFakeClock()
		tn.node.clk.Store(clock(clocks[name]))
		if name == "m0" {
			init, err := tn.client.Init(ctxT(t), api.InitRequest{CertExpiry: "1h"})
			if err != nil {
				t.Fatal(err)
			}
			c.init = init
			c.managers = append(c.managers, tn)
			continue
		}
		if _, err := tn.client.Join(ctxT(t), api.JoinRequest{Token: c.init.WorkerToken, Addr: c.init.Addr}); err != nil {
			t.Fatal(err)
		}
		c.workers = append(c.workers, tn)
	}
	for _, tn := range []*testNode{c.managers[0], c.workers[0]} {
		clk := clocks[tn.name]
		old := tn.node.current().creds.Load().Cert.Leaf
		w := clk.next(t)
		life := old.NotAfter.Sub(old.NotBefore)
		at := w.asked.Add(w.d)
		lo, hi := old.NotBefore.Add(life/2), old.NotBefore.Add(life*8/10)
		if at.Before(lo.Add(-time.Second)) || at.After(hi.Add(time.Second)) {
			t.Fatalf("%s: renewal scheduled at %s; want between %s and %s (50%%–80%% of %s)", tn.name, at, lo, hi, life)
		}
		w.fire <- time.Now()
		// The next wait is asked for once the certificate is renewed.
		clk.next(t)
		cur := tn.node.current().creds.Load().Cert.Leaf
		if cur.SerialNumber.Cmp(old.SerialNumber) == 0 || !cur.NotAfter.After(old.NotAfter.Add(-time.Minute)) {
			t.Errorf("%s: certificate not renewed: serial %v → %v", tn.name, old.SerialNumber, cur.SerialNumber)
		}
		id, err := ca.IdentityOf(cur)
		if err != nil || id.Role != map[string]ca.Role{"m0": ca.RoleManager, "w0": ca.RoleWorker}[tn.name] {
			t.Errorf("%s: renewed certificate says %+v, %v", tn.name, id, err)
		}
		onDisk, err := os.ReadFile(filepath.Join(tn.dir, "certs", "node.pem"))
		if err != nil {
			t.Fatal(err)
		}
		certs, _ := ca.ParseCertPEM(onDisk)
		if len(certs) == 0 || !bytes.Equal(certs[0].Raw, cur.Raw) {
			t.Errorf("%s: the renewed certificate is not the one on disk", tn.name)
		}
		n, err := c.managers[0].client.Node(ctxT(t), tn.status().NodeID)
		if err != nil || !n.CertExpiresAt.Equal(cur.NotAfter.UTC()) {
			t.Errorf("%s: node record expiry %v; want %v (%v)", tn.name, n.CertExpiresAt, cur.NotAfter.UTC(), err)
		}
	}
	// The cluster still works on the new certificates, on new connections.
	c.workers[0].node.current().nodeHTTP.CloseIdleConnections()
	if st := c.workers[0].status(); st.Leader.NodeID == "" {
		t.Errorf("the worker lost the cluster after renewal: %+v", st)
	}
}
