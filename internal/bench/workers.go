package bench

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/backoff"
	"github.com/holdfast/holdfast/internal/spread"
	"github.com/holdfast/holdfast/secrets"
	"github.com/holdfast/holdfast/transport"
)

// --- the worker simulator ---
//
// A simWorker does on the wire what a worker daemon does (manager/init.go
// Join, manager/follower.go, manager/delivery.go workerDelivery,
// manager/renewer.go, manager/casync.go), with its state in memory instead
// of files: it joins with the worker token over the join protocol (the CA
// pinned by the token's digest, no client certificate) with a CSR for a
// key of its own, then speaks the node API over mutual TLS 1.3 with the
// certificate it was granted, through one pooled HTTP client of its own
// (transport.NewAPIClient, as a worker's nodeHTTP). It long-polls its
// view, fetches the secrets granted to it (checking their digests), keeps
// the keyrings and the list of managers, renews its certificate at the
// point ca.RenewIn picks, follows a CA rotation step by step
// (ca.NextNodeStep: renew onto the new root, trust the new roots, report
// the new certificate), and moves to the next manager it knows, with the
// follower's backoff, when one fails. It leaves out gossip: it neither
// runs memberlist nor reports a gossip address.
//
// Unlike a daemon it does not check, when it dials, that the manager it
// reaches is one the cluster still lists (the daemon's access watcher):
// the chain, cluster and manager-role checks are made.

// simWorker is one simulated worker.
type simWorker struct {
	num   int
	creds *transport.CredStore
	hc    *http.Client

	mu sync.Mutex
	workerState
}

// workerState is what the bench reads of a simulated worker; guarded by
// simWorker.mu.
type workerState struct {
	nodeID   string
	managers []api.PeerAddr
	certPEM  []byte // the chain it presents (leaf first), as its cert file
	rootPEM  []byte // the roots it trusts, as its root file
	keyPEM   []byte
	index    uint64 // the index of its last view
	views    int    // views received
	// firstView is when the first view arrived.
	firstView time.Time
	// polled is when a poll was last written to a manager, and to which.
	polled     time.Time
	polledAddr string
	// ipsec is the newest ipsec key's Lamport time it holds, and when it
	// arrived.
	ipsec   uint64
	ipsecAt time.Time
	// have are the granted secrets it holds, by ID, and when each arrived.
	have   map[string]*secrets.Secret
	haveAt map[string]time.Time
	// issuer is the digest of the root that signed its certificate, and
	// onIssuerAt when it got that certificate.
	issuer     string
	onIssuerAt time.Time
	renewals   int
	// lastErr is the last error following the cluster.
	lastErr error
}

// snapshot returns a copy of the state the bench reads (maps shared: read
// them only under w.mu, or not at all).
func (w *simWorker) snapshot() workerState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.workerState
}

// simForwardTimeout bounds one call of a worker other than its long poll,
// as manager.Config.ForwardTimeout does.
const simForwardTimeout = 10 * time.Second

// joinWorker joins a new simulated worker through the manager at addr with
// the worker token, as `holdfast join` does: a new key, a CSR, the grant
// over the join protocol with the token's CA pinned, the grant checked.
// fakeAddr is the address the worker says it listens on (it listens on
// none: managers never dial workers).
func joinWorker(ctx context.Context, num int, token, addr, fakeAddr string) (*simWorker, error) {
	tok, err := ca.ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("worker token: %w", err)
	}
	key, err := ca.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return nil, err
	}
	jc := transport.NewJoinClient(tok.CADigest, 10*time.Second, nil)
	defer jc.CloseIdleConnections()
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	grant, err := api.NewClient(jc, "https://"+addr).Grant(gctx, api.JoinGrantRequest{Token: token, CSR: csr, Addr: fakeAddr, Level: fsm.CurrentLevel})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("join through %s: %w", addr, err)
	}
	if grant.Role != ca.RoleWorker {
		return nil, fmt.Errorf("join through %s: granted role %s, want worker", addr, grant.Role)
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		return nil, err
	}
	roots, err := ca.ParseCertPEM(grant.RootPEM)
	if err != nil {
		return nil, fmt.Errorf("grant's roots: %w", err)
	}
	if !containsDigest(roots, tok.CADigest) {
		return nil, errors.New("the grant's roots do not hold the root the token names")
	}
	creds, err := transport.LoadCredentials(grant.CertPEM, keyPEM, grant.RootPEM)
	if err != nil {
		return nil, fmt.Errorf("granted certificate: %w", err)
	}
	if creds.ID.NodeID != grant.NodeID || creds.ID.Role != ca.RoleWorker {
		return nil, fmt.Errorf("granted certificate names %s/%s, grant says %s/worker", creds.ID.NodeID, creds.ID.Role, grant.NodeID)
	}
	w := &simWorker{num: num, creds: transport.NewCredStore(creds)}
	w.hc = transport.NewAPIClient(transport.Config{Creds: w.creds})
	w.nodeID, w.managers = grant.NodeID, grant.Managers
	w.certPEM, w.rootPEM, w.keyPEM = grant.CertPEM, grant.RootPEM, keyPEM
	w.have, w.haveAt = map[string]*secrets.Secret{}, map[string]time.Time{}
	w.issuer, w.onIssuerAt = issuerDigest(creds.Cert.Leaf, roots), time.Now()
	return w, nil
}

func containsDigest(roots []*x509.Certificate, digest string) bool {
	for _, r := range roots {
		if ca.DigestOf(r.Raw) == digest {
			return true
		}
	}
	return false
}

// issuerDigest is the digest of the root among roots that signed leaf;
// empty if none did.
func issuerDigest(leaf *x509.Certificate, roots []*x509.Certificate) string {
	for _, r := range roots {
		if leaf.CheckSignatureFrom(r) == nil {
			return ca.DigestOf(r.Raw)
		}
	}
	return ""
}

// run follows the cluster until ctx ends: the long poll, and the CA and
// renewal loops beside it, as a worker daemon's loops.
func (w *simWorker) run(ctx context.Context) {
	views := make(chan *api.CAView, 1)
	var wg sync.WaitGroup
	wg.Go(func() { w.followCA(ctx, views) })
	wg.Go(func() { w.renewLoop(ctx) })
	w.follow(ctx, views)
	wg.Wait()
	w.hc.CloseIdleConnections()
}

func (w *simWorker) client(addr string) *api.Client {
	return api.NewClient(w.hc, "https://"+addr)
}

// follow is manager/follower.go's loop.
func (w *simWorker) follow(ctx context.Context, caViews chan *api.CAView) {
	bo := backoff.New(100*time.Millisecond, 5*time.Second)
	w.mu.Lock()
	pick := spread.NewPicker(w.nodeID, time.Minute)
	w.mu.Unlock()
	for ctx.Err() == nil {
		w.mu.Lock()
		managers, index := w.managers, w.index
		w.mu.Unlock()
		if len(managers) == 0 {
			w.fail(errors.New("worker knows no manager"))
			return
		}
		ids := make([]string, len(managers))
		for i, m := range managers {
			ids[i] = m.NodeID
		}
		m := managers[pick.Pick(ids)]
		client := w.client(m.Addr)
		trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				w.mu.Lock()
				w.polled, w.polledAddr = time.Now(), m.Addr
				w.mu.Unlock()
			}
		}}
		view, err := client.Self(httptrace.WithClientTrace(ctx, trace), index)
		if err == nil && view.Removed {
			err = api.ErrRemoved
		}
		if api.IsRemoved(err) {
			w.fail(err)
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.fail(err)
			pick.Failed()
			select {
			case <-ctx.Done():
				return
			case <-time.After(bo.Next()):
			}
			continue
		}
		bo.Reset()
		now := time.Now()
		if view.CA != nil {
			offerCAView(caViews, view.CA)
		}
		delivered := w.deliver(ctx, client, view.Secrets)
		w.mu.Lock()
		w.index = view.Index
		if !delivered {
			w.index = 0
		}
		w.views++
		if w.firstView.IsZero() {
			w.firstView = now
		}
		if len(view.Managers) > 0 {
			w.managers = view.Managers
		}
		for _, kr := range view.Keyrings {
			if kr.Subsystem != "ipsec" {
				continue
			}
			for _, k := range kr.Keys {
				if k.Lamport > w.ipsec {
					w.ipsec, w.ipsecAt = k.Lamport, now
				}
			}
		}
		w.mu.Unlock()
		if !delivered {
			pick.Failed()
			select {
			case <-ctx.Done():
				return
			case <-time.After(bo.Next()):
			}
		}
	}
}

func (w *simWorker) fail(err error) {
	w.mu.Lock()
	w.lastErr = err
	w.mu.Unlock()
}

// offerCAView replaces any view not yet taken with v, as a worker's
// follower offers its CA syncer the latest view only.
func offerCAView(ch chan *api.CAView, v *api.CAView) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// deliver is workerDelivery.deliver: fetch what the worker lacks of the
// granted secrets, check each one's digest, drop the revoked ones. It
// returns false when a fetch failed.
func (w *simWorker) deliver(ctx context.Context, c *api.Client, refs []api.SecretRef) bool {
	w.mu.Lock()
	var fetch []api.SecretRef
	want := map[string]bool{}
	for _, r := range refs {
		want[r.ID] = true
		if s, ok := w.have[r.ID]; !ok || s.Digest != r.Digest {
			fetch = append(fetch, r)
		}
	}
	for id := range w.have {
		if !want[id] {
			delete(w.have, id)
			delete(w.haveAt, id)
		}
	}
	w.mu.Unlock()
	ok := true
	for _, r := range fetch {
		fctx, cancel := context.WithTimeout(ctx, simForwardTimeout)
		d, err := c.FetchSecret(fctx, r.ID)
		cancel()
		if err != nil {
			w.fail(fmt.Errorf("fetch secret %s: %w", r.Name, err))
			ok = false
			continue
		}
		s, err := secrets.New(d.ID, d.Name, d.Data, nil, nil, time.Time{})
		if err != nil || s.Digest != r.Digest {
			w.fail(fmt.Errorf("secret %s does not match its digest", r.Name))
			ok = false
			continue
		}
		w.mu.Lock()
		w.have[r.ID], w.haveAt[r.ID] = s, time.Now()
		w.mu.Unlock()
	}
	return ok
}

// renewLoop is the renewer's Run: renew at ca.RenewIn's point, with
// backoff on failure.
func (w *simWorker) renewLoop(ctx context.Context) {
	for {
		leaf := w.creds.Load().Cert.Leaf
		t := time.NewTimer(ca.RenewIn(leaf.NotBefore, leaf.NotAfter, time.Now(), rand.Float64))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		bo := backoff.New(time.Second, 5*time.Minute)
		for {
			err := w.renew(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			w.fail(fmt.Errorf("renew: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(bo.Next()):
			}
		}
	}
}

// renew gets the worker a new certificate for a new key from the first
// manager it knows that answers, as renewer.Renew on a worker.
func (w *simWorker) renew(ctx context.Context) error {
	key, err := ca.NewKey()
	if err != nil {
		return err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return err
	}
	w.mu.Lock()
	managers := w.managers
	w.mu.Unlock()
	var resp *api.RenewResponse
	err = errors.New("no manager known")
	for _, m := range managers {
		rctx, cancel := context.WithTimeout(ctx, simForwardTimeout)
		resp, err = w.client(m.Addr).Renew(rctx, api.RenewRequest{CSR: csr})
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	if resp.Role != ca.RoleWorker {
		return fmt.Errorf("the cluster renewed this worker as a %s", resp.Role)
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		return err
	}
	creds, err := transport.LoadCredentials(resp.CertPEM, keyPEM, resp.RootPEM)
	if err != nil {
		return fmt.Errorf("new certificate: %w", err)
	}
	roots, err := ca.ParseCertPEM(resp.RootPEM)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.certPEM, w.rootPEM, w.keyPEM = resp.CertPEM, resp.RootPEM, keyPEM
	w.creds.Store(creds)
	if d := issuerDigest(creds.Cert.Leaf, roots); d != w.issuer {
		w.issuer, w.onIssuerAt = d, time.Now()
	}
	w.renewals++
	w.mu.Unlock()
	return nil
}

// followCA is caSyncer.Run: follow the latest CA view, with backoff.
func (w *simWorker) followCA(ctx context.Context, views <-chan *api.CAView) {
	var cur, done *api.CAView
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	bo := backoff.New(100*time.Millisecond, 10*time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-views:
			cur = v
		case <-retry.C:
		}
		if cur == nil || sameCAView(cur, done) {
			continue
		}
		if err := w.syncCA(ctx, cur); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.fail(fmt.Errorf("follow the CA: %w", err))
			retry.Reset(bo.Next())
			continue
		}
		done = cur
		bo.Reset()
	}
}

func sameCAView(a, b *api.CAView) bool {
	return b != nil && bytes.Equal(a.TrustPEM, b.TrustPEM) && a.IssuerDigest == b.IssuerDigest &&
		bytes.Equal(a.ChainPEM, b.ChainPEM) && a.RotationID == b.RotationID && a.Converted == b.Converted
}

// syncCA is caSyncer.sync, over the worker's certificate in memory.
func (w *simWorker) syncCA(ctx context.Context, v *api.CAView) error {
	trust, err := ca.ParseCertPEM(v.TrustPEM)
	if err != nil {
		return fmt.Errorf("cluster's roots: %w", err)
	}
	var issuer *x509.Certificate
	for _, r := range trust {
		if ca.DigestOf(r.Raw) == v.IssuerDigest {
			issuer = r
		}
	}
	if issuer == nil {
		return errors.New("the issuing root is not among the roots to trust")
	}
	renewed, reported := false, false
	for {
		st := ca.NodeCA{
			FromIssuer: w.creds.Load().Cert.Leaf.CheckSignatureFrom(issuer) == nil,
			RotationID: v.RotationID,
			Recorded:   v.Converted || reported,
		}
		if st.FromIssuer {
			st.TrustCurrent = w.trustCurrent(v)
		}
		switch ca.NextNodeStep(st) {
		case ca.StepNone:
			return nil
		case ca.StepRenew:
			if renewed {
				return errors.New("the renewed certificate is not from the new root yet")
			}
			if err := w.renew(ctx); err != nil {
				return fmt.Errorf("renew onto the new root: %w", err)
			}
			w.hc.CloseIdleConnections()
			renewed = true
		case ca.StepTrust:
			if err := w.refreshTrust(v); err != nil {
				return err
			}
		case ca.StepReport:
			if err := w.reportConverted(ctx); err != nil {
				return err
			}
			reported = true
		default:
			return fmt.Errorf("unexpected CA step %v", ca.NextNodeStep(st))
		}
	}
}

// presented is the certificate file the worker should hold under v.
func (w *simWorker) presented(v *api.CAView) []byte {
	leaf := w.creds.Load().Cert.Leaf
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), v.ChainPEM...)
}

func (w *simWorker) trustCurrent(v *api.CAView) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Equal(w.certPEM, w.presented(v)) && bytes.Equal(w.rootPEM, v.TrustPEM)
}

func (w *simWorker) refreshTrust(v *api.CAView) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	certPEM := w.presented(v)
	if bytes.Equal(w.certPEM, certPEM) && bytes.Equal(w.rootPEM, v.TrustPEM) {
		return nil
	}
	creds, err := transport.LoadCredentials(certPEM, w.keyPEM, v.TrustPEM)
	if err != nil {
		return fmt.Errorf("new roots: %w", err)
	}
	w.certPEM, w.rootPEM = certPEM, v.TrustPEM
	w.creds.Store(creds)
	w.hc.CloseIdleConnections()
	return nil
}

func (w *simWorker) reportConverted(ctx context.Context) error {
	w.mu.Lock()
	managers := w.managers
	w.mu.Unlock()
	err := errors.New("no manager known")
	for _, m := range managers {
		rctx, cancel := context.WithTimeout(ctx, simForwardTimeout)
		err = w.client(m.Addr).CAConverted(rctx)
		cancel()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("report the new certificate: %w", err)
}
