package manager

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/transport"
)

// joinAnswer is what a raw join request got.
type joinAnswer struct {
	status     int
	retryAfter string
	code       api.Code
	grant      api.JoinGrant
}

// rawJoin posts a join request to addr over the join protocol from the
// loopback address local, as a joiner (or an attacker) would, and reads
// the answer.
func rawJoin(t *testing.T, local, addr, token string) joinAnswer {
	t.Helper()
	key, err := ca.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(api.JoinGrantRequest{Token: token, CSR: csr, Addr: "127.0.0.9:4242"})
	d := tls.Dialer{
		NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}},
		Config:    &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{transport.ProtoJoin}, InsecureSkipVerify: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	req, _ := http.NewRequest(http.MethodPost, "https://holdfast/join", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := joinAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out.grant); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var eb struct {
		Code api.Code `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	out.code = eb.Code
	return out
}

// TestJoinStormIsThrottledPerAddress: wrong join tokens from one address
// are answered 403 up to the burst, then 429 with Retry-After (counted),
// even with a right token from that address; a right token from another
// address still gets in.
func TestJoinStormIsThrottledPerAddress(t *testing.T) {
	m := newTestNode(t, "m0", func(c *Config) {
		c.JoinFailureBurst = 3
		c.JoinFailureEvery = time.Hour
	})
	init, err := m.client.Init(ctxT(t), api.InitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.ParseToken(init.WorkerToken)
	if err != nil {
		t.Fatal(err)
	}
	wrong := good
	wrong.Secret = good.Secret[:len(good.Secret)-4] + "aaaa"
	if wrong.Secret == good.Secret {
		wrong.Secret = good.Secret[:len(good.Secret)-4] + "bbbb"
	}
	throttled := testutil.ToFloat64(limitRefusals.WithLabelValues(limitJoinFailures))

	for i := range 3 {
		if a := rawJoin(t, "127.0.0.1", init.Addr, wrong.String()); a.status != http.StatusForbidden || a.code != api.CodeUnauthenticated {
			t.Fatalf("wrong token %d within the burst: %d %s; want 403 unauthenticated", i, a.status, a.code)
		}
	}
	a := rawJoin(t, "127.0.0.1", init.Addr, wrong.String())
	if a.status != http.StatusTooManyRequests || a.code != api.CodeTooManyRequests {
		t.Fatalf("a wrong token over the burst: %d %s; want 429 too_many_requests", a.status, a.code)
	}
	if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
		t.Fatalf("Retry-After %q; want a number of seconds", a.retryAfter)
	}
	if a := rawJoin(t, "127.0.0.1", init.Addr, init.WorkerToken); a.status != http.StatusTooManyRequests {
		t.Fatalf("the throttled address, even with a right token: %d; want 429", a.status)
	}
	if got := testutil.ToFloat64(limitRefusals.WithLabelValues(limitJoinFailures)) - throttled; got != 2 {
		t.Fatalf("holdfast_limit_refusals_total{limit=join_failures} grew by %v; want 2", got)
	}
	other := rawJoin(t, "127.0.0.2", init.Addr, init.WorkerToken)
	if other.status != http.StatusOK || other.grant.NodeID == "" || other.grant.Role != ca.RoleWorker {
		t.Fatalf("a right token from another address: %d %s %+v; want a worker's grant", other.status, other.code, other.grant)
	}
	// Right tokens cost nothing: an address that joins many honest
	// nodes is never throttled.
	for i := range 5 {
		if a := rawJoin(t, "127.0.0.2", init.Addr, init.WorkerToken); a.status != http.StatusOK {
			t.Fatalf("honest join %d from one address: %d %s", i, a.status, a.code)
		}
	}
}

// TestJoinGuardRefills: an address gets one more attempt every
// JoinFailureEvery, and Retry-After says when.
func TestJoinGuardRefills(t *testing.T) {
	now := time.Unix(1e9, 0)
	g := newJoinGuard(Config{JoinFailureBurst: 2, JoinFailureEvery: 10 * time.Second})
	g.now = func() time.Time { return now }
	for range 2 {
		if _, ok := g.take("192.0.2.1"); !ok {
			t.Fatal("refused within the burst")
		}
	}
	wait, ok := g.take("192.0.2.1")
	if ok || wait != 10*time.Second {
		t.Fatalf("over the burst: ok %v, wait %v; want refused, 10s", ok, wait)
	}
	if _, ok := g.take("192.0.2.2"); !ok {
		t.Fatal("another address refused")
	}
	now = now.Add(4 * time.Second)
	if wait, ok := g.take("192.0.2.1"); ok || wait != 6*time.Second {
		t.Fatalf("4s later: ok %v, wait %v; want refused, 6s", ok, wait)
	}
	now = now.Add(6 * time.Second)
	if _, ok := g.take("192.0.2.1"); !ok {
		t.Fatal("refused after the refill")
	}
	g.refund("192.0.2.1")
	if _, ok := g.take("192.0.2.1"); !ok {
		t.Fatal("a refunded token is not there")
	}
}

// TestRefuseTooMany: the transport's limits answer with the API's error
// body: 429, too_many_requests, Retry-After.
func TestRefuseTooMany(t *testing.T) {
	rec := httptest.NewRecorder()
	refuseTooMany(rec, httptest.NewRequest(http.MethodGet, "/internal/v1/self", nil), transport.LimitConnsPerPeer, "too many")
	var eb struct {
		Code api.Code `json:"code"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &eb)
	if rec.Code != http.StatusTooManyRequests || eb.Code != api.CodeTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("answer %d %s, Retry-After %q", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
}

// TestNodeLimitsAnswerTooManyRequests: the node's port applies its
// Config.Limits with the API's answer: an address holding its join
// connections is answered 429 too_many_requests (counted), another
// address is served.
func TestNodeLimitsAnswerTooManyRequests(t *testing.T) {
	m := newTestNode(t, "m0", func(c *Config) { c.Limits = transport.Limits{MaxConnsPerPeer: 1} })
	init, err := m.client.Init(ctxT(t), api.InitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// One join connection from 127.0.0.1, kept open after an answer.
	d := tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{transport.ProtoJoin}, InsecureSkipVerify: true}}
	held, err := d.DialContext(ctxT(t), "tcp", init.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_ = held.SetDeadline(time.Now().Add(20 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "https://holdfast/join", nil)
	if err := req.Write(held); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(held), req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the first connection was not kept open")
	}
	before := testutil.ToFloat64(limitRefusals.WithLabelValues(transport.LimitConnsPerPeer))
	a := rawJoin(t, "127.0.0.1", init.Addr, init.WorkerToken)
	if a.status != http.StatusTooManyRequests || a.code != api.CodeTooManyRequests || a.retryAfter == "" {
		t.Fatalf("a second connection from one address: %d %q, Retry-After %q; want 429 too_many_requests", a.status, a.code, a.retryAfter)
	}
	if got := testutil.ToFloat64(limitRefusals.WithLabelValues(transport.LimitConnsPerPeer)) - before; got != 1 {
		t.Fatalf("holdfast_limit_refusals_total{limit=connections_per_peer} grew by %v; want 1", got)
	}
	if a := rawJoin(t, "127.0.0.2", init.Addr, init.WorkerToken); a.status != http.StatusOK {
		t.Fatalf("another address: %d %s", a.status, a.code)
	}
}
